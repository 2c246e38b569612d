// Package config binds command-line flags to environment variables
// (FACEHARVEST_ + the flag name in upper snake case) and loads secrets from
// environment variables or files, never from flags.
package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/faceharvest/faceharvest/pkg/buildinfo"
)

// EnvPrefix starts every environment variable the binaries read.
const EnvPrefix = "FACEHARVEST_"

// EnvName returns the environment variable for a flag: "kafka-brokers" ->
// "FACEHARVEST_KAFKA_BROKERS".
func EnvName(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(flag))
}

// SecretDoc documents one secret for --help.
type SecretDoc struct {
	Env  string // full variable name, e.g. FACEHARVEST_MEGVII_API_SECRET
	Help string
}

// FlagSet is a pflag.FlagSet whose --help names each flag's environment
// variable and the secrets the binary reads.
type FlagSet struct {
	*pflag.FlagSet
	name, synopsis string
	secrets        []SecretDoc
}

// NewFlagSet returns a flag set for a binary.
func NewFlagSet(name, synopsis string) *FlagSet {
	fs := &FlagSet{FlagSet: pflag.NewFlagSet(name, pflag.ContinueOnError), name: name, synopsis: synopsis}
	fs.SortFlags = false
	fs.Bool(versionFlag, false, "print the version and exit")
	return fs
}

// Secret documents a secret read from the environment (or NAME_FILE).
func (fs *FlagSet) Secret(env, help string) { fs.secrets = append(fs.secrets, SecretDoc{env, help}) }

// PrintHelp writes the usage text: synopsis, flags with their environment
// variables, and secrets.
func (fs *FlagSet) PrintHelp(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s [flags]\n\n%s\n\nFlags (each also read from the environment variable shown):\n", fs.name, fs.synopsis)
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" || f.Name == versionFlag {
			return
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "[]" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		typ := f.Value.Type()
		if typ == "bool" {
			typ = ""
		}
		fmt.Fprintf(w, "  --%s %s\n      %s%s\n      env %s\n", f.Name, typ, f.Usage, def, EnvName(f.Name))
	})
	fmt.Fprintf(w, "  --%s\n      print the version and exit\n  -h, --help\n      show this help and exit\n", versionFlag)
	if len(fs.secrets) > 0 {
		fmt.Fprintf(w, "\nSecrets (environment only; NAME_FILE reads the value from a file instead):\n")
		for _, s := range fs.secrets {
			fmt.Fprintf(w, "  %s\n      %s\n", s.Env, s.Help)
		}
	}
}

// ErrHelp is returned by Parse when --help was asked for; the help was printed.
var ErrHelp = pflag.ErrHelp

// ErrVersion is returned by Parse when --version was asked for; the version
// was printed.
var ErrVersion = errors.New("version requested")

// versionFlag is a command like --help, not a setting: no environment
// variable sets it (one left in a Deployment would stop every start).
const versionFlag = "version"

// Parse parses args, then fills every flag not given on the command line from
// its environment variable when set. A bad environment value is an error that
// names the variable.
func (fs *FlagSet) Parse(args []string, getenv func(string) string, help io.Writer) error {
	fs.Usage = func() { fs.PrintHelp(help) }
	fs.SetOutput(io.Discard)
	if err := fs.FlagSet.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return ErrHelp // pflag has printed it through Usage
		}
		return err
	}
	if v, _ := fs.GetBool(versionFlag); v {
		fmt.Fprintln(help, buildinfo.Read().String(fs.name))
		return ErrVersion
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == versionFlag {
			return
		}
		name := EnvName(f.Name)
		v := getenv(name)
		if v == "" {
			return
		}
		if f.Value.Type() == "stringSlice" || f.Value.Type() == "stringArray" {
			// Set appends for slices; start from the environment's list.
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				err = sv.Replace(splitList(v))
				if err != nil {
					err = fmt.Errorf("%s: %w", name, err)
				}
				return
			}
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = fmt.Errorf("%s=%q: %w", name, v, e)
		}
	})
	return err
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Secret holds a secret value. It prints and logs as "[REDACTED]", so a
// Secret that reaches a log line, an error or a %v leaks nothing.
type Secret struct{ v string }

// NewSecret wraps a value.
func NewSecret(v string) Secret { return Secret{v} }

// Reveal returns the value, for the one place that must send it.
func (s Secret) Reveal() string { return s.v }

// Empty reports whether no value is set.
func (s Secret) Empty() bool { return s.v == "" }

func (s Secret) String() string { return "[REDACTED]" }

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return "config.Secret{[REDACTED]}" }

// LogValue keeps slog from printing the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue("[REDACTED]") }

// MarshalText keeps encoders from printing the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte("[REDACTED]"), nil }

// ReadFile reads a file; a variable so tests need no files.
type ReadFile func(name string) ([]byte, error)

// LoadSecret reads env, or the file named by env+"_FILE" (trailing newline
// trimmed). Setting both is an error. Errors never contain the value.
func LoadSecret(getenv func(string) string, readFile ReadFile, env string) (Secret, error) {
	v, file := getenv(env), getenv(env+"_FILE")
	switch {
	case v != "" && file != "":
		return Secret{}, fmt.Errorf("both %s and %s_FILE are set: set one", env, env)
	case file != "":
		if readFile == nil {
			readFile = os.ReadFile
		}
		b, err := readFile(file)
		if err != nil {
			return Secret{}, fmt.Errorf("%s_FILE: cannot read %s: %w", env, file, errors.Unwrap(err))
		}
		return Secret{strings.TrimRight(string(b), "\r\n")}, nil
	}
	return Secret{v}, nil
}

// LoadSecretList reads a comma- or newline-separated list of secrets (for
// rotation: several accepted at once). Empty entries are dropped.
func LoadSecretList(getenv func(string) string, readFile ReadFile, env string) ([]Secret, error) {
	s, err := LoadSecret(getenv, readFile, env)
	if err != nil {
		return nil, err
	}
	var out []Secret
	for _, p := range strings.FieldsFunc(s.v, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, Secret{p})
		}
	}
	return out, nil
}

// EnvNames lists the FACEHARVEST_ variables a flag set reads, sorted; used to
// generate documentation.
func (fs *FlagSet) EnvNames() []string {
	var out []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name != versionFlag {
			out = append(out, EnvName(f.Name))
		}
	})
	for _, s := range fs.secrets {
		out = append(out, s.Env)
	}
	sort.Strings(out)
	return out
}

// ExitCode reports a parse outcome the way every binary does: 0 after
// --help or --version, otherwise the error prefixed with the binary's name
// and 2.
func ExitCode(name string, stderr io.Writer, err error) int {
	if errors.Is(err, ErrHelp) || errors.Is(err, ErrVersion) {
		return 0
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	return 2
}

// ParseLevel reads a log level: debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}
