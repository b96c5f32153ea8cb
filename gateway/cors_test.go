package gateway_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/floe-streams/floe/gateway"
)

// corsSend sends a request with header name-value pairs (send).
func corsSend(t *testing.T, method, url, body string, pairs ...string) *http.Response {
	t.Helper()
	h := http.Header{}
	for i := 0; i+1 < len(pairs); i += 2 {
		h.Set(pairs[i], pairs[i+1])
	}
	resp, _ := send(t, method, url, h, body)
	return resp
}

// A page of an allowed origin calls every API: preflights are answered
// without reaching the API, answers carry the origin, and the poll's
// Retry-After is exposed to it. Other origins get no CORS header.
func TestCORSAllowedOrigins(t *testing.T) {
	const portal = "https://portal.example.com"
	tg := serveGateway(t, gateway.Options{CORSOrigins: []string{portal, "https://*.dev.example.com"}})

	for _, tc := range []struct {
		url, method, headers string
	}{
		// Browsers list the request headers sorted and in lower case (Fetch
		// standard), which the CORS library relies on.
		{tg.producer + "/v1/topic/t/messages", "POST", "content-encoding,content-type"},
		{tg.consumer + "/v1/consumer/register?consumerId=c&topic=t", "PUT", "content-type"},
		{tg.consumer + "/v1/consumer/poll?consumerId=c", "POST", "accept"},
		{tg.discovery + "/openapi.json", "GET", ""},
	} {
		resp := corsSend(t, "OPTIONS", tc.url, "", "Origin", portal, "Access-Control-Request-Method", tc.method,
			"Access-Control-Request-Headers", tc.headers)
		h := resp.Header
		if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != portal ||
			!strings.Contains(h.Get("Access-Control-Allow-Methods"), tc.method) ||
			h.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("preflight %s %s: %d %v", tc.method, tc.url, resp.StatusCode, h)
		}
		for _, want := range strings.Split(tc.headers, ",") {
			if want != "" && !strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), want) {
				t.Errorf("preflight %s %s: header %s not allowed: %v", tc.method, tc.url, want, h)
			}
		}
	}
	if n := tg.produced.calls.Load(); n != 0 {
		t.Errorf("a preflight reached the producer: %d requests", n)
	}

	resp := corsSend(t, "POST", tg.producer+"/v1/topic/t/messages", `{"a":1}`, "Origin", portal, "Content-Type", "application/json")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != portal {
		t.Errorf("produce from %s: %d, Access-Control-Allow-Origin %q", portal, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	sub := "https://team.dev.example.com"
	if resp := corsSend(t, "PUT", tg.consumer+"/v1/consumer/register?consumerId=c&topic=t", "", "Origin", sub); resp.StatusCode != http.StatusOK ||
		resp.Header.Get("Access-Control-Allow-Origin") != sub {
		t.Errorf("register from %s: %d, %v", sub, resp.StatusCode, resp.Header)
	}
	resp = corsSend(t, "POST", tg.consumer+"/v1/consumer/poll?consumerId=c", "", "Origin", portal)
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "Retry-After") {
		t.Errorf("empty poll from %s: %d, %v", portal, resp.StatusCode, resp.Header)
	}

	// Another origin: no CORS header, so the browser keeps the answer from
	// the page; the request itself is served as any other.
	for _, method := range []string{"OPTIONS", "GET"} {
		resp := corsSend(t, method, tg.discovery+"/openapi.json", "", "Origin", "https://evil.example", "Access-Control-Request-Method", "GET")
		if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
			t.Errorf("%s from another origin: Access-Control-Allow-Origin %q", method, v)
		}
	}
}

// Without origins (the default), answers carry no CORS header and OPTIONS
// is not answered as a preflight.
func TestCORSOffByDefault(t *testing.T) {
	tg := serveGateway(t, gateway.Options{})
	resp := corsSend(t, "OPTIONS", tg.producer+"/v1/topic/t/messages", "", "Origin", "https://portal.example.com", "Access-Control-Request-Method", "POST")
	if resp.StatusCode == http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight without CORS origins: %d, %v", resp.StatusCode, resp.Header)
	}
	resp = corsSend(t, "POST", tg.producer+"/v1/topic/t/messages", `{"a":1}`, "Origin", "https://portal.example.com", "Content-Type", "application/json")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("produce without CORS origins: %d, %v", resp.StatusCode, resp.Header)
	}
}

func TestCheckCORSOrigin(t *testing.T) {
	for _, ok := range []string{"*", "https://portal.example.com", "http://localhost:8080", "https://*.example.com", "http://[::1]:3000", "https://x.example:80", "http://x.example:443"} {
		if err := gateway.CheckCORSOrigin(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for bad, why := range map[string]string{
		"portal.example.com":       "the scheme must be http or https",
		"ftp://x.example":          "the scheme must be http or https",
		"https://x.example/":       "no path",
		"https://x.example/portal": "no path",
		"https://x.example?a=1":    "no path",
		"https://user@x.example":   "no path, query or user",
		"https://":                 "no host",
		"https://a.*.example.com":  `"*" may only start the host`,
		"https:x.example":          "no host",
		"https://x.example#frag":   "no path",
		"https://x.example:80:80/": "",
		"https://x.example:443":    "no default port: leave out :443",
		"http://*.x.example:80":    "no default port: leave out :80",
	} {
		err := gateway.CheckCORSOrigin(bad)
		if err == nil || !strings.Contains(err.Error(), why) || !strings.Contains(err.Error(), "e.g. https://portal.example.com") {
			t.Errorf("%q: %v, want an error saying %q", bad, err, why)
		}
	}
	if _, err := gateway.New(gateway.Services{}, gateway.Options{CORSOrigins: []string{"nope"}}); err == nil || !strings.Contains(err.Error(), "CORSOrigins") {
		t.Errorf("New with an invalid origin: %v", err)
	}
}
