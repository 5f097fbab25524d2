package main

import (
	"io"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// redactor removes credentials from text: the user information of any
// MongoDB connection string, and every secret of the URI the user gave
// (its password and secret options, as written and decoded), wherever they
// appear, for driver errors may quote them.
type redactor struct {
	secrets []string
}

// placeholder replaces what a redactor removes.
const placeholder = "xxxxx"

var uriUserinfo = regexp.MustCompile(`(mongodb(?:\+srv)?://)[^@/\s]*@`)

// secretOptions are the URI options whose values are secrets.
var secretOptions = []string{"authmechanismproperties", "tlscertificatekeyfilepassword", "sslclientcertificatekeypassword"}

func newRedactor(uri string) *redactor {
	r := &redactor{}
	add := func(s string) {
		if s == "" {
			return
		}
		r.secrets = append(r.secrets, s)
		if u, err := url.PathUnescape(s); err == nil && u != s {
			r.secrets = append(r.secrets, u)
		}
		if u, err := url.QueryUnescape(s); err == nil && u != s {
			r.secrets = append(r.secrets, u)
		}
	}
	rest := uri
	if _, after, ok := strings.Cut(rest, "://"); ok {
		rest = after
	}
	hosts, query, _ := strings.Cut(rest, "?")
	hosts, _, _ = strings.Cut(hosts, "/")
	if i := strings.LastIndex(hosts, "@"); i >= 0 {
		userinfo := hosts[:i]
		add(userinfo)
		if _, pass, ok := strings.Cut(userinfo, ":"); ok {
			add(pass)
		}
	}
	for kv := range strings.SplitSeq(query, "&") {
		k, v, _ := strings.Cut(kv, "=")
		if slices.Contains(secretOptions, strings.ToLower(k)) {
			add(v)
		}
	}
	// Longest first, so that a secret inside another is not half replaced.
	slices.SortFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
	return r
}

// redact returns s without credentials.
func (r *redactor) redact(s string) string {
	s = uriUserinfo.ReplaceAllString(s, "${1}"+placeholder+"@")
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, placeholder)
	}
	return s
}

// redactWriter writes through a redactor; each Write is redacted as a
// whole, so callers write whole messages. It is safe for concurrent use.
type redactWriter struct {
	mu sync.Mutex
	w  io.Writer
	r  *redactor
}

func (rw *redactWriter) Write(p []byte) (int, error) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if _, err := io.WriteString(rw.w, rw.r.redact(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
