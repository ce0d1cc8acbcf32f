package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// dockerStage is one FROM block of a Dockerfile.
type dockerStage struct {
	name, base string
	copies     [][]string // COPY arguments, flags included
	runs       []string
	user       string
	entrypoint []string
}

// parseDockerfile reads the instructions we use; continuation lines are
// joined and comments dropped, as docker does.
func parseDockerfile(t *testing.T, path string) []*dockerStage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages []*dockerStage
	var line string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(text, "#") || (text == "" && line == "") {
			continue
		}
		if cont, ok := strings.CutSuffix(text, "\\"); ok {
			line += cont + " "
			continue
		}
		line += text
		fields := strings.Fields(line)
		line = ""
		if len(fields) == 0 {
			continue
		}
		args := fields[1:]
		var cur *dockerStage
		if len(stages) > 0 {
			cur = stages[len(stages)-1]
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			s := &dockerStage{base: args[0]}
			if len(args) == 3 && strings.EqualFold(args[1], "AS") {
				s.name = args[2]
			}
			stages = append(stages, s)
		case "COPY":
			cur.copies = append(cur.copies, args)
		case "RUN":
			cur.runs = append(cur.runs, strings.Join(args, " "))
		case "USER":
			cur.user = args[0]
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(strings.Join(args, " ")), &cur.entrypoint); err != nil {
				t.Fatalf("ENTRYPOINT %v is not exec form: %v", args, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return stages
}

func stageNamed(stages []*dockerStage, name string) *dockerStage {
	for _, s := range stages {
		if s.name == name {
			return s
		}
	}
	return nil
}

func TestDockerfileStagesAgreeWithTheRepository(t *testing.T) {
	stages := parseDockerfile(t, "Dockerfile")
	build := stageNamed(stages, "build")
	if build == nil {
		t.Fatal("no build stage")
	}
	// The builder's Go must be the go.mod language version (1.26).
	mod, _ := os.ReadFile("go.mod")
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
	if goVer == nil || build.base != "golang:"+string(goVer[1]) {
		t.Errorf("build stage FROM %s, want golang:%s (go.mod)", build.base, goVer[1])
	}
	// Every source copied into the builder exists and is not dockerignored.
	ignore, _ := os.ReadFile(".dockerignore")
	ignored := strings.Fields(regexp.MustCompile(`(?m)#.*$`).ReplaceAllString(string(ignore), ""))
	for _, c := range build.copies {
		for _, src := range c[:len(c)-1] {
			if _, err := os.Stat(src); err != nil {
				t.Errorf("COPY %s: %v", src, err)
			}
			for _, pat := range ignored {
				if ok, _ := filepath.Match(pat, src); ok {
					t.Errorf("COPY %s is excluded by .dockerignore pattern %q", src, pat)
				}
			}
		}
	}
	for _, pat := range ignored {
		for _, needed := range []string{"go.mod", "go.sum", "main.go", "gateway", "examples"} {
			if ok, _ := filepath.Match(pat, needed); ok {
				t.Errorf(".dockerignore pattern %q excludes %s", pat, needed)
			}
		}
	}
	// Every package built exists, and what is built is what final stages copy.
	built := map[string]bool{}
	for _, run := range build.runs {
		for _, m := range regexp.MustCompile(`go build .*?-o (\S+) (\S+)`).FindAllStringSubmatch(run, -1) {
			built[m[1]] = true
			if _, err := os.Stat(filepath.Join(m[2], "main.go")); err != nil {
				t.Errorf("builds package %s: %v", m[2], err)
			}
		}
	}
	for _, target := range []string{"gateway", "demo-service"} {
		s := stageNamed(stages, target)
		if s == nil {
			t.Errorf("no %s stage", target)
			continue
		}
		if !strings.HasPrefix(s.base, "gcr.io/distroless/static") && s.base != "scratch" {
			t.Errorf("%s: FROM %s, want a small static base (distroless static or scratch)", target, s.base)
		}
		if u := strings.Split(s.user, ":")[0]; u == "" || u == "root" || u == "0" {
			t.Errorf("%s: USER %q, want a non-root user", target, s.user)
		}
		var dst string
		for _, c := range s.copies {
			if c[0] == "--from=build" && built[c[1]] {
				dst = c[len(c)-1]
			}
		}
		if dst == "" || len(s.entrypoint) == 0 || s.entrypoint[0] != dst {
			t.Errorf("%s: ENTRYPOINT %v does not run the binary copied from the build stage (%q)", target, s.entrypoint, dst)
		}
	}
}
