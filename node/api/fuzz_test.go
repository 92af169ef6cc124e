package api

import (
	"bytes"
	"encoding/json"
	"mime"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// FuzzSubmitBody decodes arbitrary POST /data bodies as handleSubmit does.
// A body not sent as application/json is the entry, byte for byte. A JSON
// body gives the entry exactly when it is an object whose last member
// named "data" (matched case-insensitively, as encoding/json does) is a
// string and no member so named holds anything but a string or null, and
// no string escapes half a UTF-16 surrogate pair alone (encoding/json would
// read it as U+FFFD); the entry is then valid UTF-8, and a client that
// encodes it as {"data": ...} gets it through unchanged.
func FuzzSubmitBody(f *testing.F) {
	const jsonType = "application/json"
	for _, s := range []struct{ body, ctype string }{
		{"hello", "text/plain"},
		{"hello", ""},
		{"\xff not UTF-8", "application/octet-stream"},
		{`{"data":"hello"}`, jsonType},
		{`{"data":"hello"}`, "text/plain"},
		{`{"data":"hello"}`, jsonType + "; charset=utf-8"},
		{`{"data":"hello"}`, "Application/JSON"},
		{`{"data":""}`, jsonType},
		{`{"data":null}`, jsonType},
		{`{"data":5}`, jsonType},
		{`{"data":["a"]}`, jsonType},
		{`{"DATA":"upper"}`, jsonType},
		{`{"data":"first","Data":"second"}`, jsonType},
		{`{"data":"kept","data":null}`, jsonType},
		{`{"d\u0061ta":"escaped key"}`, jsonType},
		{`{"other":1,"data":"x","more":{"data":2}}`, jsonType},
		{`{"data":"\ud800 lone surrogate"}`, jsonType},
		{`{"data":"\udc00 lone low surrogate"}`, jsonType},
		{`{"data":"\ud83d\ude00 a pair"}`, jsonType},
		{`{"data":"\ud83d\u0041 high then not low"}`, jsonType},
		{`{"data":"\\ud800 an escaped backslash"}`, jsonType},
		{`{"data":"ok","other":"\ud800"}`, jsonType},
		{`{"data":"\ufffd written as such"}`, jsonType},
		{"{\"data\":\"\xff raw invalid\"}", jsonType},
		{`{"data":"x"} trailing`, jsonType},
		{` {"data":"spaced"} `, jsonType},
		{`null`, jsonType},
		{`[]`, jsonType},
		{`"data"`, jsonType},
		{``, jsonType},
	} {
		f.Add([]byte(s.body), s.ctype)
	}
	f.Fuzz(func(t *testing.T, body []byte, ctype string) {
		text, err := submittedEntry(body, ctype)
		if !isJSONType(ctype) {
			if err != nil || text != string(body) {
				t.Fatalf("plain body %q (%q) gave %q, %v", body, ctype, text, err)
			}
			return
		}
		want, ok := submitOracle(body)
		if (err == nil) != ok {
			t.Fatalf("JSON body %q: error %v, want ok=%v", body, err, ok)
		}
		if err != nil {
			if msg := err.Error(); msg != `want {"data": "..."}` && msg != "JSON body is not valid UTF-8" && err != errLoneSurrogate {
				t.Fatalf("JSON body %q: error %q", body, err)
			}
			return
		}
		if text != want {
			t.Fatalf("JSON body %q gave %q, want %q", body, text, want)
		}
		if !utf8.ValidString(text) {
			t.Fatalf("JSON body %q gave invalid UTF-8 %q", body, text)
		}
		enc, err := json.Marshal(map[string]string{"data": text})
		if err != nil {
			t.Fatal(err)
		}
		if again, err := submittedEntry(enc, ctype); err != nil || again != text {
			t.Fatalf("re-encoded body %s gave %q, %v; want %q", enc, again, err, text)
		}
	})
}

// submitOracle reads a JSON submission independently of encoding/json's
// struct decoding, token by token: the entry is the last string under a
// key equal to "data" ignoring case; null under such a key clears it, and
// any other value there makes the body wrong.
func submitOracle(body []byte) (string, bool) {
	if !utf8.Valid(body) || !json.Valid(body) || oracleLoneSurrogate(body) {
		return "", false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", false
	}
	var cur *string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return "", false
		}
		if !strings.EqualFold(key, "data") {
			continue
		}
		raw = bytes.TrimSpace(raw)
		switch {
		case string(raw) == "null":
			cur = nil
		case raw[0] == '"':
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return "", false
			}
			cur = &s
		default:
			return "", false
		}
	}
	if cur == nil {
		return "", false
	}
	return *cur, true
}

// jsonEscape matches one escape of a JSON string: a backslash and the
// letter after it, or \u and four hex digits. Matched left to right, an
// escaped backslash is consumed whole, so the letter after it is text.
var jsonEscape = regexp.MustCompile(`\\(u[0-9a-fA-F]{4}|.)`)

// oracleLoneSurrogate finds, by regular expression rather than by scanning
// bytes as loneSurrogate does, a \u escape of a surrogate that is not a
// high one followed at once by an escaped low one.
func oracleLoneSurrogate(body []byte) bool {
	ms := jsonEscape.FindAllSubmatchIndex(body, -1)
	unit := func(k int) (uint16, bool) {
		if k >= len(ms) || ms[k][1]-ms[k][0] != 6 {
			return 0, false
		}
		v, err := strconv.ParseUint(string(body[ms[k][0]+2:ms[k][1]]), 16, 16)
		return uint16(v), err == nil
	}
	for k := 0; k < len(ms); k++ {
		u, ok := unit(k)
		if !ok || !utf16.IsSurrogate(rune(u)) {
			continue
		}
		lo, ok := unit(k + 1)
		if !ok || ms[k+1][0] != ms[k][1] || utf16.DecodeRune(rune(u), rune(lo)) == utf8.RuneError {
			return true
		}
		k++
	}
	return false
}

// isJSONType says whether a Content-Type header names application/json,
// as mime.ParseMediaType reads a well-formed one. A header it refuses is
// judged by its type alone, before any parameters.
func isJSONType(ctype string) bool {
	if mt, _, err := mime.ParseMediaType(ctype); err == nil {
		return mt == "application/json"
	}
	mt, _, _ := strings.Cut(ctype, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/json")
}
