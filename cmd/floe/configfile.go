package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"

	"go.yaml.in/yaml/v3"
)

// configFile holds the settings of a YAML config file: a mapping whose keys
// are flag names and whose values are scalars, parsed by the flags.
type configFile struct {
	entries map[string]fileEntry
}

type fileEntry struct {
	value string
	where string // "path:line"
}

func (f *configFile) lookup(name string) (fileEntry, bool) {
	if f == nil {
		return fileEntry{}, false
	}
	e, ok := f.entries[name]
	return e, ok
}

// readConfigFile reads path and checks its keys against the flags of fs.
// Values are checked when they are applied (a flag or a variable may
// override them).
func readConfigFile(path string, fs *flag.FlagSet) (*configFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parseConfigFile(path, data, fs)
}

func parseConfigFile(path string, data []byte, fs *flag.FlagSet) (*configFile, error) {
	f := &configFile{entries: map[string]fileEntry{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return f, nil // an empty file sets nothing
		}
		return nil, fmt.Errorf("config: %s: %v", path, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config: %s:%d: a config file holds one YAML document", path, extra.Line)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return f, nil // only comments
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config: %s:%d: expected a mapping of settings (data-dir: /var/lib/floe)", path, root.Line)
	}
	var errs []error
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		where := fmt.Sprintf("%s:%d", path, k.Line)
		switch {
		case k.Kind != yaml.ScalarNode:
			errs = append(errs, fmt.Errorf("%s: a key must be a setting name", where))
			continue
		case k.Value == "config":
			errs = append(errs, fmt.Errorf("%s: config: a config file cannot name another one", where))
			continue
		case fs.Lookup(k.Value) == nil:
			errs = append(errs, fmt.Errorf("%s: unknown setting %q (floe --help lists the settings)", where, k.Value))
			continue
		}
		if prev, dup := f.entries[k.Value]; dup {
			errs = append(errs, fmt.Errorf("%s: %s: set twice (also at %s)", where, k.Value, prev.where))
			continue
		}
		switch {
		case v.Kind == yaml.AliasNode && v.Alias != nil && v.Alias.Kind == yaml.ScalarNode:
			v = v.Alias
		case v.Kind != yaml.ScalarNode:
			errs = append(errs, fmt.Errorf("%s: %s: expected a single value, not a list or a mapping", where, k.Value))
			continue
		}
		if v.Tag == "!!null" {
			errs = append(errs, fmt.Errorf("%s: %s: no value (write \"\" for an empty one)", where, k.Value))
			continue
		}
		f.entries[k.Value] = fileEntry{value: v.Value, where: where}
	}
	return f, errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
