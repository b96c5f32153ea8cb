package gateway

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/rs/cors"
)

// withCORS lets pages served from origins call h from a browser (CORS), as
// an API portal that shows the OpenAPI document with "try it" does: it
// answers preflight requests itself (204, without calling h) and adds the
// Access-Control-* headers to the answers of the requests of those origins.
// Without origins it returns h: browsers then refuse cross-origin calls, and
// no answer carries CORS headers.
//
// The methods and request headers are those the REST API uses (register
// takes PUT, a produce body may be gzip); the poll's 204 carries
// Retry-After, which a page may read. Credentials are not allowed: the API
// has none.
func withCORS(origins []string, h http.Handler) http.Handler {
	if len(origins) == 0 {
		return h
	}
	return cors.New(cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut},
		AllowedHeaders: []string{"Content-Type", "Content-Encoding", "Accept"},
		ExposedHeaders: []string{"Retry-After"},
		MaxAge:         600,
	}).Handler(h)
}

// CheckCORSOrigin refuses what cannot be an allowed origin: "*" (any
// origin), or a scheme (http or https), a host and an optional port, with
// no path, such as https://portal.example.com or http://localhost:8080, and
// not the scheme's default port, which browsers leave out of Origin. A host
// may start with "*." to allow its subdomains.
func CheckCORSOrigin(origin string) error {
	if origin == "*" {
		return nil
	}
	bad := func(why string) error {
		return fmt.Errorf("%q is not an origin (%s): write scheme://host[:port], e.g. https://portal.example.com, or * for any", origin, why)
	}
	u, err := url.Parse(origin)
	switch {
	case err != nil:
		return bad("it does not parse")
	case u.Scheme != "http" && u.Scheme != "https":
		return bad("the scheme must be http or https")
	case u.Host == "" || u.Opaque != "":
		return bad("no host")
	case u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(origin, "?") || strings.HasSuffix(origin, "#"):
		return bad("an origin has no path, query or user")
	case strings.Contains(strings.TrimPrefix(u.Host, "*."), "*"):
		return bad(`"*" may only start the host, as in *.example.com`)
	case u.Scheme == "https" && u.Port() == "443" || u.Scheme == "http" && u.Port() == "80":
		// Browsers leave the default port out of Origin, so this would
		// never match.
		return bad("browsers send no default port: leave out :" + u.Port())
	}
	return nil
}
