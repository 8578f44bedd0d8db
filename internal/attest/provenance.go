package attest

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// SLSAProvenanceType is the predicate type of SLSA provenance v1 (cosign's
// `--type slsaprovenance1`).
const SLSAProvenanceType = "https://slsa.dev/provenance/v1"

// DefaultBuildType names how this pipeline builds (the meaning of
// externalParameters below).
const DefaultBuildType = "https://github.com/acme/webapp-pipeline/buildtypes/cmd-build/v1"

// Provenance is what the build knows about how it made an image; Statement
// turns it into an in-toto statement with a SLSA v1 predicate.
//
// externalParameters carries {"source": {"repository", "commit", "ref"},
// "parameters": <Parameters>}; the instance checks source.repository.
type Provenance struct {
	Image      string // the subject: repo@sha256:... as pushed
	Repository string // the source repository, e.g. https://github.com/acme/shop (what the instance checks)
	Commit     string // the git commit built ("" when not known: a build outside a git checkout)
	Ref        string // the branch or tag, if known

	BuilderID      string            // e.g. https://github.com/acme/webapp-pipeline/cmd/build
	BuilderVersion map[string]string // e.g. {"cmd/build": "v1.2.0", "go-build-id": "...", "dagger": "v0.18.10"}
	BuildType      string            // DefaultBuildType when empty

	// Parameters are the resolved app contract and build flags, opaque here
	// (they must marshal to JSON objects, arrays, strings, numbers, booleans).
	Parameters map[string]any
	// BaseImage is the base image by digest: name@sha256:....
	BaseImage string
	// Materials are the other inputs (requirements files, the build program's
	// module, the engine...), each with a digest.
	Materials []Material
	// Byproducts: the SBOM, added by Attach with its digest.
	Byproducts []Material

	// Platforms: when Image is an image index (more than one platform), each
	// platform's image by its manifest digest; each is a subject beside the
	// index, annotated with its platform, so an instance can check that the
	// image it pulls for its own platform is one this provenance is of.
	Platforms []PlatformImage

	InvocationID          string    // e.g. the CodeBuild build id
	StartedOn, FinishedOn time.Time // zero: left out (a rebuild then gives the same statement)
}

// PlatformImage is one platform's image of an index.
type PlatformImage struct {
	Platform string // linux/arm64
	Digest   string // sha256:...
}

// Material is one resource: a URI and/or name, and its digests
// ({"sha256": hex} or {"gitCommit": sha}).
type Material struct {
	Name      string            `json:"name,omitempty"`
	URI       string            `json:"uri,omitempty"`
	Digest    map[string]string `json:"digest,omitempty"`
	MediaType string            `json:"mediaType,omitempty"`
}

// Statement is the in-toto statement as canonical JSON (sorted keys, no
// insignificant space): the same inputs give the same bytes.
func (p Provenance) Statement() ([]byte, error) {
	img, err := name.NewDigest(p.Image)
	if err != nil {
		return nil, fmt.Errorf("provenance subject %q: want repo@sha256:...: %w", p.Image, err)
	}
	if p.Repository == "" {
		return nil, fmt.Errorf("provenance of %s: the source repository is required", p.Image)
	}
	base, err := name.NewDigest(p.BaseImage)
	if err != nil {
		return nil, fmt.Errorf("provenance: base image %q must be named by digest (name@sha256:...)", p.BaseImage)
	}
	if p.BuilderID == "" {
		return nil, fmt.Errorf("provenance: the builder id is required")
	}
	source := map[string]any{"repository": p.Repository}
	if p.Commit != "" {
		source["commit"] = p.Commit
	}
	if p.Ref != "" {
		source["ref"] = p.Ref
	}
	params := map[string]any{}
	for k, v := range p.Parameters {
		params[k] = v
	}
	ext, err := toStruct(map[string]any{"source": source, "parameters": params})
	if err != nil {
		return nil, fmt.Errorf("provenance parameters: %w", err)
	}
	var deps []*intoto.ResourceDescriptor
	if p.Commit != "" {
		deps = append(deps, &intoto.ResourceDescriptor{Uri: "git+" + p.Repository, Digest: map[string]string{"gitCommit": p.Commit}})
	}
	deps = append(deps, &intoto.ResourceDescriptor{Name: "base-image", Uri: "oci://" + imageName(base.Context()), Digest: digestMap(base.DigestStr())})
	deps = append(deps, descriptors(p.Materials)...)
	buildType := p.BuildType
	if buildType == "" {
		buildType = DefaultBuildType
	}
	pred := &slsa.Provenance{
		BuildDefinition: &slsa.BuildDefinition{
			BuildType:            buildType,
			ExternalParameters:   ext,
			ResolvedDependencies: deps,
		},
		RunDetails: &slsa.RunDetails{
			Builder:    &slsa.Builder{Id: p.BuilderID, Version: p.BuilderVersion},
			Byproducts: descriptors(p.Byproducts),
		},
	}
	if p.InvocationID != "" || !p.StartedOn.IsZero() || !p.FinishedOn.IsZero() {
		md := &slsa.BuildMetadata{InvocationId: p.InvocationID}
		if !p.StartedOn.IsZero() {
			md.StartedOn = timestamppb.New(p.StartedOn)
		}
		if !p.FinishedOn.IsZero() {
			md.FinishedOn = timestamppb.New(p.FinishedOn)
		}
		pred.RunDetails.Metadata = md
	}
	if err := pred.Validate(); err != nil {
		return nil, fmt.Errorf("provenance: %w", err)
	}
	predStruct, err := protoToStruct(pred)
	if err != nil {
		return nil, err
	}
	subjects := []*intoto.ResourceDescriptor{{Name: img.Context().Name(), Digest: digestMap(img.DigestStr())}}
	for _, pi := range p.Platforms {
		if _, err := v1.NewHash(pi.Digest); err != nil {
			return nil, fmt.Errorf("provenance: the %s image's digest %q: %w", pi.Platform, pi.Digest, err)
		}
		ann, err := toStruct(map[string]any{"platform": pi.Platform})
		if err != nil {
			return nil, err
		}
		subjects = append(subjects, &intoto.ResourceDescriptor{Name: img.Context().Name(), Digest: digestMap(pi.Digest), Annotations: ann})
	}
	st := &intoto.Statement{
		Type:          intoto.StatementTypeUri,
		Subject:       subjects,
		PredicateType: SLSAProvenanceType,
		Predicate:     predStruct,
	}
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("provenance statement: %w", err)
	}
	return canonicalProto(st)
}

// imageName is repo's name as people write it: docker.io/library/python,
// not go-containerregistry's index.docker.io/library/python.
func imageName(repo name.Repository) string {
	if repo.RegistryStr() == name.DefaultRegistry {
		return "docker.io/" + repo.RepositoryStr()
	}
	return repo.Name()
}

func descriptors(ms []Material) []*intoto.ResourceDescriptor {
	var out []*intoto.ResourceDescriptor
	for _, m := range ms {
		out = append(out, &intoto.ResourceDescriptor{Name: m.Name, Uri: m.URI, Digest: m.Digest, MediaType: m.MediaType})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name+out[i].Uri < out[j].Name+out[j].Uri })
	return out
}

// digestMap turns "sha256:hex" into {"sha256": "hex"}.
func digestMap(d string) map[string]string {
	alg, hex, _ := strings.Cut(d, ":")
	return map[string]string{alg: hex}
}

func toStruct(v map[string]any) (*structpb.Struct, error) {
	b, err := json.Marshal(v) // normalises Go types (structs, ints) to JSON values first
	if err != nil {
		return nil, err
	}
	s := &structpb.Struct{}
	return s, protojson.Unmarshal(b, s)
}

func protoToStruct(m proto.Message) (*structpb.Struct, error) {
	b, err := protojson.Marshal(m)
	if err != nil {
		return nil, err
	}
	s := &structpb.Struct{}
	return s, protojson.Unmarshal(b, s)
}

// canonicalProto: protojson's output is deliberately unstable in spacing;
// re-encoding with encoding/json gives sorted keys and fixed bytes.
func canonicalProto(m proto.Message) ([]byte, error) {
	b, err := protojson.Marshal(m)
	if err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}
