package build

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestDockerfileImages(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "Dockerfile")
	df := "# syntax=docker/dockerfile:1\n# escape=\\\nARG PY=3.13\nFROM python:${PY}-slim AS base\n" +
		"from --platform=linux/amd64 python:3.11-slim as Builder\nRUN echo FROM nothing\nFROM builder\nFROM base\nFROM scratch\n" +
		"FROM ghcr.io/astral-sh/uv:0.13.9 AS uv\n"
	if err := os.WriteFile(path, []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := dockerfileImages(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []dockerfileRef{{"docker/dockerfile:1", 1}, {"python:3.11-slim", 5}, {"ghcr.io/astral-sh/uv:0.13.9", 10}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("dockerfileImages = %v, want %v", got, want)
	}
}
