package build

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/acme/webapp-pipeline/internal/contract"
)

// The contract explains itself: which setting made the build do what it
// did, so a surprise (an ignored Dockerfile, a command that is not found)
// points at the line to change.

// ignoredDockerfile is the warning for a native build of an app that has a
// Dockerfile ("" when there is nothing to say): the contract chose the
// pipeline's own image, and the Dockerfile's FROM, RUN and CMD play no part.
func ignoredDockerfile(app contract.App, appDir string) string {
	if app.Build != contract.BuildNative {
		return ""
	}
	if _, err := os.Stat(filepath.Join(appDir, app.Dockerfile)); err != nil {
		return ""
	}
	return fmt.Sprintf("image-build native%s: %s is ignored (the image is the pipeline's own, running command%s): "+
		"set image-build: dockerfile or auto in pipeline.yml to build the Dockerfile",
		app.From("image-build"), filepath.Join(app.Dir, app.Dockerfile), app.From("command"))
}

// commandFrom says where the command the image runs came from: the
// contract's command (a native image), or the Dockerfile's CMD/ENTRYPOINT
// (the last ones in the file), or the base image.
func commandFrom(app contract.App, appDir string) string {
	if app.Build == contract.BuildNative {
		from := "the contract's command" + app.From("command")
		if app.Origin["image-build"] != "" && app.Origin["image-build"] != "default" {
			from += ", run by image-build native" + app.From("image-build")
		}
		return from
	}
	file := filepath.Join(app.Dir, app.Dockerfile)
	f, err := os.Open(filepath.Join(appDir, app.Dockerfile))
	if err != nil {
		return "the Dockerfile " + file
	}
	defer f.Close()
	var cmd, ep int
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "CMD":
			cmd = n
		case "ENTRYPOINT":
			ep = n
		}
	}
	switch {
	case ep > 0 && cmd > 0:
		return fmt.Sprintf("the Dockerfile's ENTRYPOINT and CMD (%s lines %d, %d)", file, ep, cmd)
	case ep > 0:
		return fmt.Sprintf("the Dockerfile's ENTRYPOINT (%s line %d)", file, ep)
	case cmd > 0:
		return fmt.Sprintf("the Dockerfile's CMD (%s line %d)", file, cmd)
	}
	return "the base image's CMD (" + file + " sets none)"
}
