package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	floev1 "github.com/floe-streams/floe/gen/floe/v1"
)

// registerBody is the JSON body form of register that PolarStreams clients
// send: {"id":"c1","group":"g","topics":["a","b"],"onNewGroup":"startFromEarliest"}.
type registerBody struct {
	ID         string   `json:"id"`
	ConsumerID string   `json:"consumerId"`
	Group      string   `json:"group"`
	Topics     []string `json:"topics"`
	Topic      []string `json:"topic"`
	OnNewGroup string   `json:"onNewGroup"`
}

// maxRegisterBody is the largest JSON body register accepts: tens of
// thousands of topic names.
const maxRegisterBody = 1 << 20

// registerBodyToQuery accepts the JSON body form of register (PUT or POST)
// by moving its fields to the query parameters, which the generated handler
// reads. Parameters given in the query win.
func registerBodyToQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/consumer/register" || (r.Method != http.MethodPost && r.Method != http.MethodPut) {
			next.ServeHTTP(w, r)
			return
		}
		data, err := io.ReadAll(io.LimitReader(r.Body, maxRegisterBody+1))
		if err != nil {
			writeError(w, readError(err))
			return
		}
		if len(data) > maxRegisterBody {
			writeError(w, newError(floev1.ErrorCode_ERROR_CODE_BODY_TOO_LARGE, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("register body too large: the limit is %d bytes", maxRegisterBody)))
			return
		}
		if len(bytes.TrimSpace(data)) > 0 {
			var rb registerBody
			if err := json.Unmarshal(data, &rb); err != nil {
				writeError(w, newError(floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER, http.StatusBadRequest,
					fmt.Sprintf("register body: %v; expected {\"id\":...,\"group\":...,\"topics\":[...],\"onNewGroup\":...}", err)))
				return
			}
			q := r.URL.Query()
			setIfAbsent := func(key, v string) {
				if v != "" && q.Get(key) == "" && (key != "consumerId" || q.Get("consumer_id") == "") {
					q.Set(key, v)
				}
			}
			setIfAbsent("consumerId", rb.ID)
			setIfAbsent("consumerId", rb.ConsumerID)
			setIfAbsent("group", rb.Group)
			setIfAbsent("onNewGroup", rb.OnNewGroup)
			if len(q["topic"]) == 0 {
				q["topic"] = append(rb.Topics, rb.Topic...)
			}
			r.URL.RawQuery = q.Encode()
		}
		r.Body = http.NoBody
		r.ContentLength = 0
		r.Header.Del("Content-Type")
		next.ServeHTTP(w, r)
	})
}
