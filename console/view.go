package console

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dagflow/dagflow"
)

//go:embed templates/*.html
var templateFS embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"stateLabel": stateLabel,
	"time":       formatTime,
	"rfc3339":    func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
	"ms":         formatDuration,
	"plural":     plural,
}).ParseFS(templateFS, "templates/*.html"))

// pageView is what every HTML page has.
type pageView struct {
	Title  string
	Base   string // the relative path to the console's root
	Assets map[string]string
	// Refresh, when not 0, reloads the page every that many seconds in a
	// browser without JavaScript (which gets live updates instead).
	Refresh int
}

func (c *console) page(r *request, title string) pageView {
	return pageView{Title: title, Base: r.base, Assets: assetURLs}
}

// render writes an HTML page.
func (c *console) render(w http.ResponseWriter, r *request, code int, name string, v any) {
	var b bytes.Buffer
	if err := c.tmpl.ExecuteTemplate(&b, name, v); err != nil {
		slog.Error("dagflow console: rendering a page", "page", name, "error", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		w.Write(b.Bytes())
	}
}

type errorView struct {
	pageView
	Code    int
	Message string
}

// errorPage writes an HTML page that says what went wrong.
func (c *console) errorPage(w http.ResponseWriter, r *request, code int, title, msg string) {
	c.render(w, r, code, "error", errorView{pageView: c.page(r, title), Code: code, Message: msg})
}

func (c *console) notFound(w http.ResponseWriter, r *http.Request, depth int) {
	rq := &request{Request: r, base: strings.Repeat("../", max(depth, 0))}
	c.errorPage(w, rq, http.StatusNotFound, "Not found", "There is nothing at this address.")
}

// engineError writes the page for an error of the engine: 404 for an
// unknown run, 409 for a call that does not fit the run's state, 503 when
// the engine is closed, 500 otherwise.
func (c *console) engineError(w http.ResponseWriter, r *request, err error) {
	code := errStatus(err)
	title := http.StatusText(code)
	msg := err.Error()
	switch code {
	case http.StatusNotFound:
		title, msg = "Run not found", fmt.Sprintf("There is no run %q.", r.runID())
	case http.StatusInternalServerError:
		slog.Error("dagflow console", "path", r.URL.Path, "error", err)
	}
	c.render(w, r, code, "error", errorView{pageView: c.page(r, title), Code: code, Message: msg})
}

// writeJSON writes v as a JSON reply.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeRawJSON(w, code, b)
}

func writeRawJSON(w http.ResponseWriter, code int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(b)
	w.Write([]byte("\n"))
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	writeRawJSON(w, code, b)
}

// stateLabel is the words for a state.
func stateLabel(s dagflow.State) string {
	if s == dagflow.StateCompensationFailed {
		return "compensation failed"
	}
	return string(s)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

// formatDuration writes d the way a person reads it: 850ms, 4.2s, 3m05s,
// 2h10m.
func formatDuration(d time.Duration) string {
	switch {
	case d < 0:
		return ""
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// runDuration is how long a run took, or has been running.
func runDuration(start, end time.Time, state dagflow.State, now time.Time) string {
	if start.IsZero() {
		return ""
	}
	if end.IsZero() {
		if state.Final() {
			return ""
		}
		end = now
	}
	return formatDuration(end.Sub(start))
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// previewLimit is the most of a JSON value (result, context, input) a page
// shows; the rest is a link away.
const previewLimit = 16 << 10

// jsonView is a JSON value as a page shows it: indented, and cut past
// previewLimit.
type jsonView struct {
	Text string
	Size int  // bytes of the whole value
	Cut  bool // Text is the start of the value only
	URL  string
}

func newJSONView(raw json.RawMessage, rawURL string) jsonView {
	v := jsonView{Size: len(raw), URL: rawURL}
	if len(raw) == 0 {
		return v
	}
	text := unescapeHTMLChars(raw)
	if len(text) <= 4*previewLimit {
		var b bytes.Buffer
		if json.Indent(&b, text, "", "  ") == nil {
			text = b.Bytes()
		}
	}
	if len(text) > previewLimit {
		cut := previewLimit
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text, v.Cut = text[:cut], true
	}
	v.Text = string(text)
	return v
}

// unescapeHTMLChars undoes encoding/json's escaping of <, > and & in the
// strings of a JSON text (\u003c, \u003e, \u0026), so a page shows them as
// they are; html/template escapes them for the page.
func unescapeHTMLChars(raw []byte) []byte {
	if !bytes.Contains(raw, []byte(`\u00`)) {
		return raw
	}
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' || i+1 >= len(raw) {
			out = append(out, raw[i])
			continue
		}
		if raw[i+1] == 'u' && i+6 <= len(raw) {
			switch string(raw[i+2 : i+6]) {
			case "003c", "003C":
				out, i = append(out, '<'), i+5
				continue
			case "003e", "003E":
				out, i = append(out, '>'), i+5
				continue
			case "0026":
				out, i = append(out, '&'), i+5
				continue
			}
		}
		out = append(out, raw[i], raw[i+1]) // any other escape, kept whole
		i++
	}
	return out
}

func (v jsonView) SizeText() string { return sizeText(v.Size) }

// sizeText writes a number of bytes the way a person reads it.
func sizeText(n int) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// Limits of the long texts (errors) a page shows: the first line, cut at
// headRunes, stands for the text where space is short (a summary, a list
// row, a title attribute); the text itself is cut at textLimit bytes, and
// folded when it is longer than its head.
const (
	headRunes = 200
	textLimit = 8 << 10
)

// textView is a text that may be long, an error above all, as a page shows
// it: its head in a line, the rest folded, and past textLimit cut, with a
// link to the whole text.
type textView struct {
	Head string // the first line, cut at headRunes
	Text string // the text, cut at textLimit bytes
	Size int    // bytes of the whole text
	Cut  bool   // Text is the start of the text only
	Long bool   // there is more than Head: the page folds it
	URL  string // the whole text, when Cut
}

func newTextView(s, rawURL string) textView {
	v := textView{Size: len(s), URL: rawURL, Head: headLine(s)}
	v.Text = s
	if len(s) > textLimit {
		v.Text, v.Cut = cutBytes(s, textLimit), true
	}
	v.Long = v.Head != s
	return v
}

// headLine is the first line of s, cut at headRunes, with an ellipsis when
// anything was left out.
func headLine(s string) string {
	line, rest, more := strings.Cut(strings.TrimLeft(s, "\n"), "\n")
	line = strings.TrimRight(line, "\r")
	if utf8.RuneCountInString(line) > headRunes {
		return truncate(line, headRunes)
	}
	if more && strings.TrimSpace(rest) != "" {
		return line + " …"
	}
	return line
}

// cutBytes cuts s to at most n bytes, on a rune boundary.
func cutBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func (v textView) SizeText() string { return sizeText(v.Size) }

// redactURL shows a URL without what may be a secret: the password of its
// userinfo and the values of its query. The result is for reading, not
// for following.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(an unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	query := u.RawQuery
	u.RawQuery, u.ForceQuery, u.Fragment = "", false, ""
	s := u.String()
	if query != "" {
		var keys []string
		for _, kv := range strings.Split(query, "&") {
			k, _, _ := strings.Cut(kv, "=")
			keys = append(keys, k+"=…")
		}
		s += "?" + strings.Join(keys, "&")
	}
	return s
}

// urlInText finds the URLs in an error message.
var urlInText = regexp.MustCompile(`https?://[^\s"'<>]+`)

// scrub hides the secrets of the URLs in an error message, as redactURL
// does: the engine's errors of HTTP steps name the URL they called.
func scrub(msg string) string {
	if !strings.Contains(msg, "://") {
		return msg
	}
	return urlInText.ReplaceAllStringFunc(msg, func(u string) string {
		trimmed := strings.TrimRight(u, ".,:;)")
		return redactURL(trimmed) + u[len(trimmed):]
	})
}

// scrubStatus scrubs the errors of a run's status.
func scrubStatus(st *dagflow.Status) {
	st.Error = scrub(st.Error)
	for i := range st.Steps {
		s := &st.Steps[i]
		s.Error = scrub(s.Error)
		if s.Compensation != nil {
			s.Compensation.Error = scrub(s.Compensation.Error)
		}
	}
}

// scrubAttempts scrubs the errors of attempts.
func scrubAttempts(atts []dagflow.Attempt) {
	for i := range atts {
		atts[i].Error = scrub(atts[i].Error)
	}
}

// pct writes a fraction as a percentage for SVG attributes.
func pct(f float64) string {
	if math.IsNaN(f) || f < 0 {
		f = 0
	}
	return fmt.Sprintf("%.3f%%", f*100)
}

// truncate cuts s to n runes, with an ellipsis.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
