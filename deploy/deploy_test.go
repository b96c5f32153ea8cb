// Package deploy_test checks the deployment files (no cluster and no Docker
// engine here): the Kubernetes manifests parse and agree with each other
// and with floe, and the Docker build context builds the binary.
package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/floe-streams/floe"
)

// docs decodes every YAML document of a file.
func docs(t *testing.T, name string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", name, len(out)+1, err)
		}
		if d != nil {
			out = append(out, d)
		}
	}
}

// at walks a decoded document: keys of maps, indexes of lists.
func at(t *testing.T, v any, keys ...any) any {
	t.Helper()
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%v: not a mapping at %q", v, k)
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("%v: no item %d", v, k)
			}
			v = l[k]
		}
	}
	return v
}

func TestKubernetesManifests(t *testing.T) {
	byKind := map[string]map[string]any{}
	for _, d := range docs(t, "kubernetes.yaml") {
		kind, _ := d["kind"].(string)
		if kind == "" || d["apiVersion"] == nil || at(t, d, "metadata", "name") != "floe" {
			t.Fatalf("document without kind, apiVersion or name floe: %v", d)
		}
		byKind[kind] = d
	}
	svc, sts, cm := byKind["Service"], byKind["StatefulSet"], byKind["ConfigMap"]
	if svc == nil || sts == nil || cm == nil {
		t.Fatalf("want a Service, a StatefulSet and a ConfigMap; have %v", len(byKind))
	}
	if at(t, svc, "spec", "clusterIP") != "None" {
		t.Error("the Service is not headless")
	}
	if at(t, sts, "spec", "serviceName") != "floe" || at(t, sts, "spec", "replicas") != 1 {
		t.Error("StatefulSet: serviceName floe, replicas 1")
	}

	pod := at(t, sts, "spec", "template", "spec")
	c := at(t, pod, "containers", 0)
	ports := map[string]int{}
	for _, p := range at(t, c, "ports").([]any) {
		ports[at(t, p, "name").(string)] = at(t, p, "containerPort").(int)
	}
	want := map[string]int{"grpc": 9249, "discovery": 9250, "producer": 9251, "consumer": 9252, "metrics": 9253}
	for name, port := range want {
		if ports[name] != port {
			t.Errorf("container port %s: %d, want %d", name, ports[name], port)
		}
	}
	for _, p := range at(t, svc, "spec", "ports").([]any) {
		if name := at(t, p, "targetPort").(string); ports[name] != at(t, p, "port") {
			t.Errorf("service port %v targets %s (%d)", at(t, p, "port"), name, ports[name])
		}
	}
	for _, probe := range []string{"startupProbe", "readinessProbe", "livenessProbe"} {
		if at(t, c, probe, "httpGet", "path") != "/status" || ports[at(t, c, probe, "httpGet", "port").(string)] != 9250 {
			t.Errorf("%s: want GET /status on the discovery port", probe)
		}
	}
	for _, k := range []string{"requests", "limits"} {
		if at(t, c, "resources", k, "memory") != "256Mi" {
			t.Errorf("resources.%s.memory: want 256Mi", k)
		}
	}

	env := map[string]any{}
	for _, e := range at(t, c, "env").([]any) {
		env[at(t, e, "name").(string)] = e
	}
	if at(t, env["POD_NAME"], "valueFrom", "fieldRef", "fieldPath") != "metadata.name" ||
		!strings.HasPrefix(at(t, env["FLOE_ADVERTISED_HOST"], "value").(string), "$(POD_NAME)") {
		t.Error("FLOE_ADVERTISED_HOST must come from the pod name (downward API)")
	}
	if at(t, env["FLOE_DATA_DIR"], "value") != "/data" {
		t.Error("FLOE_DATA_DIR: want /data")
	}

	// The data volume is the claim template, mounted on the data dir.
	mounts := map[string]string{}
	for _, m := range at(t, c, "volumeMounts").([]any) {
		mounts[at(t, m, "name").(string)] = at(t, m, "mountPath").(string)
	}
	claim := at(t, sts, "spec", "volumeClaimTemplates", 0, "metadata", "name").(string)
	if mounts[claim] != "/data" {
		t.Errorf("claim %q mounted at %q, want /data", claim, mounts[claim])
	}
	// The config file is the ConfigMap's key, where FLOE_CONFIG says.
	cfgPath := at(t, env["FLOE_CONFIG"], "value").(string)
	if dir, file := path.Split(cfgPath); mounts["config"] != strings.TrimSuffix(dir, "/") || at(t, cm, "data", file) == nil {
		t.Errorf("FLOE_CONFIG %s: not a key of the ConfigMap mounted at %s", cfgPath, mounts["config"])
	}
	// The config file only uses known settings: run floe on it to check.
	checkConfigWithFloe(t, at(t, cm, "data", path.Base(cfgPath)).(string))

	// The kubelet waits longer than floe's shutdown.
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(at(t, cm, "data", path.Base(cfgPath)).(string)), &cfg); err != nil {
		t.Fatal(err)
	}
	timeout, err := time.ParseDuration(cfg["shutdown-timeout"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if grace := time.Duration(at(t, pod, "terminationGracePeriodSeconds").(int)) * time.Second; grace <= timeout+floe.MaxShutdownOverrun {
		t.Errorf("terminationGracePeriodSeconds %v is not over shutdown-timeout %v plus the %v a shutdown may take beyond it",
			grace, timeout, floe.MaxShutdownOverrun)
	}
}

// checkConfigWithFloe runs `go run ./cmd/floe --config FILE` with an
// invalid extra setting, so that floe parses the file and stops before
// starting: the error must be about the extra setting only.
func checkConfigWithFloe(t *testing.T, text string) {
	t.Helper()
	if testing.Short() {
		return
	}
	file := filepath.Join(t.TempDir(), "floe.yaml")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goBin(), "run", "./cmd/floe", "--config", file, "--consumer-ranges", "-1")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "consumer-ranges: -1 not in") || strings.Contains(string(out), file) {
		t.Errorf("floe on the ConfigMap's file:\n%s", out)
	}
}

func goBin() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// TestDockerBuildContext builds cmd/floe the way the Dockerfile does, from
// a copy of the repository without what .dockerignore leaves out, and
// checks the Dockerfile's COPY sources and settings.
func TestDockerBuildContext(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dockerfile, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"FROM golang:${GO_VERSION} AS build", "ENV CGO_ENABLED=0",
		`go build -trimpath -ldflags="-s -w" -o /out/floe ./cmd/floe`,
		"FROM gcr.io/distroless/static:nonroot", "ENV FLOE_DATA_DIR=/data", `VOLUME ["/data"]`,
		"EXPOSE 9249 9250 9251 9252 9253", "USER 65532:65532", `ENTRYPOINT ["/usr/local/bin/floe"]`,
	} {
		if !bytes.Contains(dockerfile, []byte(want)) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}

	ignore := dockerignore(t, "../.dockerignore")
	ctx := t.TempDir()
	err = filepath.WalkDir("..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("..", p)
		if rel == "." {
			return nil
		}
		if ignore(filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		dst := filepath.Join(ctx, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	// Each COPY of the build stage names files of the context.
	sc := bufio.NewScanner(bytes.NewReader(dockerfile))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && f[0] == "COPY" && !strings.HasPrefix(f[1], "--") {
			for _, src := range f[1 : len(f)-1] {
				if _, err := os.Stat(filepath.Join(ctx, src)); err != nil {
					t.Errorf("COPY %s: not in the build context: %v", src, err)
				}
			}
		}
	}
	for _, left := range []string{".git", "bin", "deploy", "tools", "README.md"} {
		if _, err := os.Stat(filepath.Join(ctx, left)); err == nil {
			t.Errorf("%s is in the build context", left)
		}
	}
	// Without the Dockerfile's -trimpath and -ldflags, which change no
	// file that the build needs but would miss the build cache of the
	// other tests' builds (minutes on a fresh machine).
	cmd := exec.Command(goBin(), "build", "-mod=readonly", "-o", filepath.Join(t.TempDir(), "floe"), "./cmd/floe")
	cmd.Dir = ctx
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build in the Docker context: %v\n%s", err, out)
	}
}

// dockerignore reads the patterns of a .dockerignore (the subset it uses:
// names, globs, **/ prefixes; no ! exceptions) and returns the matcher of
// a slash-separated path relative to the context.
func dockerignore(t *testing.T, name string) func(string) bool {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for l := range strings.Lines(string(data)) {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "!") {
			t.Fatalf("%s: exceptions (%s) are not simulated here", name, l)
		}
		patterns = append(patterns, strings.TrimPrefix(l, "/"))
	}
	return func(rel string) bool {
		for _, p := range patterns {
			if sub, ok := strings.CutPrefix(p, "**/"); ok {
				// Any depth: match the last elements.
				parts := strings.Split(rel, "/")
				for i := range parts {
					if m, _ := path.Match(sub, strings.Join(parts[i:], "/")); m {
						return true
					}
				}
				continue
			}
			if m, _ := path.Match(p, rel); m {
				return true
			}
		}
		return false
	}
}
