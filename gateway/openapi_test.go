package gateway

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	floev1 "github.com/floe-streams/floe/gen/floe/v1"
)

// testOpenAPI has the servers openapifix writes: the document's own (the
// discovery API) and one path's, served on two APIs.
const testOpenAPI = `{
  "openapi": "3.0.3",
  "servers": [{"url": "http://{host}:{port}", "x-floe-api": "discovery",
    "variables": {"host": {"default": "localhost"}, "port": {"default": "9250"}}}],
  "paths": {"/status": {"servers": [
    {"url": "http://{host}:{port}", "x-floe-api": "producer",
      "variables": {"host": {"default": "localhost"}, "port": {"default": "9251"}}},
    {"url": "http://{host}:{port}", "x-floe-api": "consumer",
      "variables": {"host": {"default": "localhost"}, "port": {"default": "9252"}}}]}}
}`

type servedDoc struct {
	Servers []servedServer `json:"servers"`
	Paths   map[string]struct {
		Servers []servedServer `json:"servers"`
	} `json:"paths"`
}

type servedServer struct {
	API       *string `json:"x-floe-api"`
	Variables map[string]struct {
		Default string `json:"default"`
	} `json:"variables"`
}

func (s servedServer) String() string {
	return s.Variables["host"].Default + ":" + s.Variables["port"].Default
}

func getOpenAPI(t *testing.T, g *Gateway, host string) servedDoc {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/openapi.json", nil)
	r.Host = host
	w := httptest.NewRecorder()
	g.Discovery().ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("GET /openapi.json: %d %s", w.Code, w.Body)
	}
	var doc servedDoc
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatalf("%v: %s", err, w.Body)
	}
	for _, s := range append(doc.Servers, doc.Paths["/status"].Servers...) {
		if s.API != nil {
			t.Errorf("served server %s still has x-floe-api", s)
		}
	}
	return doc
}

func newDocGateway(t *testing.T, doc string) *Gateway {
	t.Helper()
	g, err := New(Services{Discovery: floev1.UnimplementedDiscoveryServer{}}, Options{OpenAPI: []byte(doc)})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// The document names the host the client asked for, JSON-escaped whatever
// it is, and, until Serve knows the listeners, the default ports.
func TestOpenAPIServersHost(t *testing.T) {
	g := newDocGateway(t, testOpenAPI)
	for _, tc := range []struct{ host, want string }{
		{"broker.example:9250", "broker.example"},
		{"broker.example", "broker.example"},
		{"10.1.2.3:19250", "10.1.2.3"},
		{"[::1]:9250", "[::1]"},
		{"", "localhost"},
		{`odd"host\`, `odd"host\`},
	} {
		doc := getOpenAPI(t, g, tc.host)
		got := []string{doc.Servers[0].String(), doc.Paths["/status"].Servers[0].String(), doc.Paths["/status"].Servers[1].String()}
		want := []string{tc.want + ":9250", tc.want + ":9251", tc.want + ":9252"}
		if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
			t.Errorf("Host %q: servers %v, want %v", tc.host, got, want)
		}
	}
}

// Once Serve has the listeners, the document names their ports, each API's
// its own.
func TestOpenAPIServersPorts(t *testing.T) {
	g := newDocGateway(t, testOpenAPI)
	var ls [3]net.Listener
	for i := range ls {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls[i] = l
	}
	if err := g.serveOpenAPIWith(ls[0], ls[1], ls[2]); err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		l.Close()
	}
	doc := getOpenAPI(t, g, "h")
	port := func(l net.Listener) string { return "h:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port) }
	got := []string{doc.Servers[0].String(), doc.Paths["/status"].Servers[0].String(), doc.Paths["/status"].Servers[1].String()}
	if want := []string{port(ls[0]), port(ls[1]), port(ls[2])}; got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("servers %v, want %v", got, want)
	}
}

func TestOpenAPIMissing(t *testing.T) {
	g := newDocGateway(t, "")
	r := httptest.NewRequest(http.MethodGet, "/openapi.json", nil)
	w := httptest.NewRecorder()
	g.Discovery().ServeHTTP(w, r)
	if w.Code != http.StatusNotFound {
		t.Errorf("GET /openapi.json without a document: %d, want 404", w.Code)
	}
	if _, err := New(Services{Discovery: floev1.UnimplementedDiscoveryServer{}}, Options{OpenAPI: []byte("{")}); err == nil {
		t.Error("New accepted a document that does not parse")
	}
}
