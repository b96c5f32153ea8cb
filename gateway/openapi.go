package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// The OpenAPI document (OpenAPI 3.0, gen/openapiv3) names the port of each
// path with servers of the form http://{host}:{port}, each marked with its
// API (x-floe-api: discovery, producer or consumer) and defaulting to the
// API's default port. The gateway serves it with the ports it listens on
// and, as the default host, the host the client asked for the document:
// the host it reaches the broker by. A generated client, or a portal, then
// calls the right port without being told.

// apiMarker names the API of a server object in the document.
const apiMarker = "x-floe-api"

// hostMark stands for the host in a rendered document. JSON encodes it as
// \u0000host\u0000, which no document holds otherwise.
const hostMark = "\x00host\x00"

// openAPIDoc is the document with its ports set, split where the host goes.
type openAPIDoc struct {
	parts [][]byte
}

// newOpenAPIDoc sets the port of every server of doc to the port of its API
// in ports ("discovery", "producer", "consumer"); an API missing from ports
// keeps its default port.
func newOpenAPIDoc(doc []byte, ports map[string]int) (*openAPIDoc, error) {
	var d map[string]any
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("gateway: OpenAPI document: %w", err)
	}
	set := func(v any) {
		servers, _ := v.([]any)
		for _, s := range servers {
			server, _ := s.(map[string]any)
			api, _ := server[apiMarker].(string)
			delete(server, apiMarker)
			vars, _ := server["variables"].(map[string]any)
			if host, ok := vars["host"].(map[string]any); ok {
				host["default"] = hostMark
			}
			if port, ok := vars["port"].(map[string]any); ok && ports[api] != 0 {
				port["default"] = strconv.Itoa(ports[api])
			}
		}
	}
	set(d["servers"])
	paths, _ := d["paths"].(map[string]any)
	for _, item := range paths {
		item, _ := item.(map[string]any)
		set(item["servers"])
	}
	out, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	mark, _ := json.Marshal(hostMark)
	return &openAPIDoc{parts: bytes.Split(out, mark[1:len(mark)-1])}, nil
}

// render returns the document with host as the default host of its servers.
func (d *openAPIDoc) render(host string) []byte {
	h, _ := json.Marshal(host)
	return bytes.Join(d.parts, h[1:len(h)-1])
}

// requestHost is the host name of r's Host header (without its port, IPv6
// addresses in brackets), or localhost when it has none.
func requestHost(r *http.Request) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "" {
		return "localhost"
	}
	if strings.Contains(host, ":") {
		return "[" + host + "]"
	}
	return host
}

// serveOpenAPI serves the document, with the ports of the listeners once
// Serve has them.
func (g *Gateway) serveOpenAPI(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	doc := g.openAPI.Load()
	if doc == nil {
		writeError(w, routingError(http.StatusNotFound, "/openapi.json: this gateway has no OpenAPI document"))
		return
	}
	body := doc.render(requestHost(r))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// serveOpenAPIWith sets the served document's ports to those of the
// listeners.
func (g *Gateway) serveOpenAPIWith(discovery, producer, consumer net.Listener) error {
	if g.openAPI.Load() == nil {
		return nil
	}
	doc, err := newOpenAPIDoc(g.opts.OpenAPI, map[string]int{
		"discovery": listenerPort(discovery),
		"producer":  listenerPort(producer),
		"consumer":  listenerPort(consumer),
	})
	if err != nil {
		return err
	}
	g.openAPI.Store(doc)
	return nil
}

// listenerPort is l's TCP port, 0 when it has none.
func listenerPort(l net.Listener) int {
	if a, ok := l.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}
