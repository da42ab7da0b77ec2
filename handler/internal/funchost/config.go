package funchost

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Trigger types funchost runs.
const (
	TriggerHTTP  = "httpTrigger"
	TriggerTimer = "timerTrigger"
)

// Function is one functions/<name>/function.json.
type Function struct {
	Name    string // the folder name: the function name
	Trigger string // TriggerHTTP or TriggerTimer
	Binding string // the trigger binding's name

	// HTTP triggers.
	Route     string   // the route under /api/ (the function name when function.json sets none)
	Methods   []string // upper case; empty: every method
	AuthLevel string   // anonymous, function or admin (locally no key is checked, like Core Tools)

	// Timer triggers.
	Schedule   string // as written, %VAR% unresolved
	UseMonitor bool   // the schedule monitor (ScheduleStatus) is on: function.json's useMonitor, default true
}

// Host's function name rule (FunctionMetadataManager).
var nameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_\-]{0,127}$`)

type binding struct {
	Type       string   `json:"type"`
	Direction  string   `json:"direction"`
	Name       string   `json:"name"`
	AuthLevel  string   `json:"authLevel"`
	Methods    []string `json:"methods"`
	Route      *string  `json:"route"`
	Schedule   string   `json:"schedule"`
	UseMonitor *bool    `json:"useMonitor"`
}

// LoadFunctions reads every <dir>/<name>/function.json (one level deep, like the host), sorted by name.
// Folders without a function.json are not functions. funchost runs what this project uses: HTTP triggers
// whose only other binding is an http output (forwarded as they are), and timer triggers without other
// bindings; anything else is an error naming the file.
func LoadFunctions(dir string) ([]Function, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading functions: %w", err)
	}
	var fns []Function
	seenRoutes := map[string]string{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		path := filepath.Join(dir, e.Name(), "function.json")
		raw, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		fn, err := parseFunction(e.Name(), raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if fn.Trigger == TriggerHTTP {
			key := strings.ToLower(fn.Route)
			if other, ok := seenRoutes[key]; ok {
				return nil, fmt.Errorf("%s: route %q is also the route of function %s", path, fn.Route, other)
			}
			seenRoutes[key] = fn.Name
		}
		fns = append(fns, fn)
	}
	if len(fns) == 0 {
		return nil, fmt.Errorf("no function.json under %s", dir)
	}
	sort.Slice(fns, func(i, j int) bool { return fns[i].Name < fns[j].Name })
	return fns, nil
}

func parseFunction(name string, raw []byte) (Function, error) {
	fn := Function{Name: name}
	if !nameRE.MatchString(name) {
		return fn, fmt.Errorf("function name %q: expected a letter, then letters, digits, '_' or '-'", name)
	}
	var doc struct {
		Disabled any       `json:"disabled"`
		Bindings []binding `json:"bindings"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fn, fmt.Errorf("not valid JSON: %w", err)
	}
	var trigger *binding
	var others []binding
	for i := range doc.Bindings {
		b := &doc.Bindings[i]
		if b.Name == "" || b.Type == "" || (b.Direction != "in" && b.Direction != "out") {
			return fn, fmt.Errorf("binding %d: expected name, type and direction \"in\" or \"out\"", i+1)
		}
		if strings.HasSuffix(strings.ToLower(b.Type), "trigger") {
			if trigger != nil {
				return fn, fmt.Errorf("two triggers (%s and %s): a function has exactly one", trigger.Name, b.Name)
			}
			trigger = b
			continue
		}
		others = append(others, *b)
	}
	if trigger == nil {
		return fn, errors.New("no trigger binding")
	}
	if trigger.Direction != "in" {
		return fn, fmt.Errorf("trigger %s: direction %q, expected \"in\"", trigger.Name, trigger.Direction)
	}
	fn.Binding = trigger.Name
	switch {
	case strings.EqualFold(trigger.Type, TriggerHTTP):
		fn.Trigger = TriggerHTTP
		if len(others) != 1 || !strings.EqualFold(others[0].Type, "http") || others[0].Direction != "out" {
			return fn, errors.New("an httpTrigger needs exactly one other binding, an http output: funchost forwards only such functions (enableForwardingHttpRequest)")
		}
		switch level := strings.ToLower(trigger.AuthLevel); level {
		case "", "function":
			fn.AuthLevel = "function"
		case "anonymous", "admin":
			fn.AuthLevel = level
		default:
			return fn, fmt.Errorf("authLevel %q: expected anonymous, function or admin", trigger.AuthLevel)
		}
		for _, m := range trigger.Methods {
			switch u := strings.ToUpper(m); u {
			case "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE":
				fn.Methods = append(fn.Methods, u)
			default:
				return fn, fmt.Errorf("method %q: expected an HTTP method", m)
			}
		}
		fn.Route = name
		if trigger.Route != nil {
			fn.Route = strings.Trim(*trigger.Route, "/")
		}
		if strings.ContainsAny(fn.Route, "{}?#") || fn.Route == "" {
			return fn, fmt.Errorf("route %q: funchost serves literal routes only", fn.Route)
		}
	case strings.EqualFold(trigger.Type, TriggerTimer):
		fn.Trigger = TriggerTimer
		if len(others) != 0 {
			return fn, fmt.Errorf("timer with other bindings (%s): funchost runs plain timers only", others[0].Name)
		}
		if strings.TrimSpace(trigger.Schedule) == "" {
			return fn, errors.New("timerTrigger without a schedule")
		}
		fn.Schedule = trigger.Schedule
		fn.UseMonitor = trigger.UseMonitor == nil || *trigger.UseMonitor
	default:
		return fn, fmt.Errorf("trigger type %q: funchost runs httpTrigger and timerTrigger", trigger.Type)
	}
	return fn, nil
}

// HostConfig is the part of host.json funchost uses.
type HostConfig struct {
	FunctionTimeout  time.Duration // 0: none
	Executable       string        // customHandler.description.defaultExecutablePath
	Arguments        []string
	WorkingDirectory string
	Forwarding       bool // customHandler.enableForwardingHttpRequest
}

// LoadHostConfig reads dir/host.json: version 2.0 with a customHandler section.
func LoadHostConfig(dir string) (HostConfig, error) {
	var hc HostConfig
	path := filepath.Join(dir, "host.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return hc, fmt.Errorf("reading host.json: %w", err)
	}
	var doc struct {
		Version         string `json:"version"`
		FunctionTimeout string `json:"functionTimeout"`
		CustomHandler   *struct {
			Description struct {
				DefaultExecutablePath string   `json:"defaultExecutablePath"`
				WorkingDirectory      string   `json:"workingDirectory"`
				Arguments             []string `json:"arguments"`
			} `json:"description"`
			EnableForwardingHttpRequest bool `json:"enableForwardingHttpRequest"`
		} `json:"customHandler"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return hc, fmt.Errorf("%s: not valid JSON: %w", path, err)
	}
	if doc.Version != "2.0" {
		return hc, fmt.Errorf("%s: version %q, expected \"2.0\"", path, doc.Version)
	}
	if doc.CustomHandler == nil || doc.CustomHandler.Description.DefaultExecutablePath == "" {
		return hc, fmt.Errorf("%s: no customHandler.description.defaultExecutablePath", path)
	}
	hc.Executable = doc.CustomHandler.Description.DefaultExecutablePath
	hc.Arguments = doc.CustomHandler.Description.Arguments
	hc.WorkingDirectory = doc.CustomHandler.Description.WorkingDirectory
	hc.Forwarding = doc.CustomHandler.EnableForwardingHttpRequest
	if doc.FunctionTimeout != "" && doc.FunctionTimeout != "-1" {
		d, err := parseTimeSpan(doc.FunctionTimeout)
		if err != nil {
			return hc, fmt.Errorf("%s: functionTimeout: %w", path, err)
		}
		hc.FunctionTimeout = d
	}
	return hc, nil
}

// parseTimeSpan reads a .NET TimeSpan as host.json writes it: [d.]hh:mm:ss.
func parseTimeSpan(s string) (time.Duration, error) {
	var days, h, m, sec int
	rest := s
	if d, r, ok := strings.Cut(s, "."); ok && strings.Count(s, ":") == 2 && !strings.Contains(d, ":") {
		if _, err := fmt.Sscanf(d, "%d", &days); err != nil {
			return 0, fmt.Errorf("%q: expected [d.]hh:mm:ss", s)
		}
		rest = r
	}
	if n, err := fmt.Sscanf(rest, "%d:%d:%d", &h, &m, &sec); err != nil || n != 3 || h < 0 || m < 0 || m > 59 || sec < 0 || sec > 59 {
		return 0, fmt.Errorf("%q: expected [d.]hh:mm:ss", s)
	}
	return time.Duration(days)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second, nil
}
