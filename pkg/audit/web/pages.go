package web

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"strings"
)

//go:embed templates/*.html templates/audit.css
var files embed.FS

// pages are the page templates, each a complete document built on
// layout.html; the stylesheet sits inline in the layout and the
// Content-Security-Policy allows it by its hash (styleHash), so the page
// loads nothing but itself, its images and its video.
type pages struct {
	t         map[string]*template.Template
	styleHash string
}

func loadPages() (*pages, error) {
	css, err := files.ReadFile("templates/audit.css")
	if err != nil {
		return nil, err
	}
	layout, err := files.ReadFile("templates/layout.html")
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(css)
	p := &pages{t: map[string]*template.Template{}, styleHash: "sha256-" + base64.StdEncoding.EncodeToString(sum[:])}
	base := strings.Replace(string(layout), "/*STYLE*/", string(css), 1)
	funcs := template.FuncMap{"inc": func(i int) int { return i + 1 }}
	for _, name := range []string{"login", "search", "verification", "error"} {
		b, err := files.ReadFile("templates/" + name + ".html")
		if err != nil {
			return nil, err
		}
		t, err := template.New("layout").Funcs(funcs).Parse(base)
		if err == nil {
			_, err = t.Parse(string(b))
		}
		if err != nil {
			return nil, fmt.Errorf("page %s: %w", name, err)
		}
		p.t[name] = t
	}
	return p, nil
}

func (p *pages) execute(w io.Writer, name string, data frame) error {
	t, ok := p.t[name]
	if !ok {
		return fmt.Errorf("no page %q", name)
	}
	return t.ExecuteTemplate(w, "layout", data)
}
