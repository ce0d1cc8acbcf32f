package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/gatewayco/gateway/internal/consultest"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// usersDoc is a valid route document: one route to the users service.
func usersDoc(route, prefix string) string {
	return fmt.Sprintf("route %q {\n  path_prefix = %q\n  service     = \"users\"\n}\n", route, prefix)
}

func TestRoutesValidateReportsFileLineColumn(t *testing.T) {
	good := writeFile(t, "good.hcl", usersDoc("users", "/api/users"))
	bad := writeFile(t, "bad.hcl", "route \"x\" {\n  path_prefix = \"/x\"\n  service = \"x\"\n  timeout = \"soon\"\n}\n")
	tests := []struct {
		name       string
		files      []string
		wantErr    error
		wantStdout string
		wantStderr string
	}{
		{"good file", []string{good}, nil, good + ": ok (1 routes)", ""},
		{"bad file", []string{good, bad}, errInvalidDocs, good + ": ok", bad + ":4:"},
		{"missing file", []string{filepath.Join(t.TempDir(), "nope.hcl")}, errInvalidDocs, "", "no such file"},
		{"no file", nil, errUsage, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(append([]string{"routes", "validate"}, tc.files...), &out, &errb)
			if !errors.Is(err, tc.wantErr) && !(err == nil && tc.wantErr == nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(out.String(), tc.wantStdout) || !strings.Contains(errb.String(), tc.wantStderr) {
				t.Fatalf("stdout %q stderr %q; want %q and %q", out.String(), errb.String(), tc.wantStdout, tc.wantStderr)
			}
		})
	}
	if exitCode(errInvalidDocs) != 1 || exitCode(errUsage) != 2 {
		t.Fatal("exit codes: invalid documents must exit 1, usage errors 2")
	}
}

func TestRoutesPushWritesToKVWithCheckAndSet(t *testing.T) {
	addr := consultest.Start(t).HTTPAddr
	client, err := api.NewClient(&api.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, "users.hcl", usersDoc("users", "/api/users"))
	var out, errb bytes.Buffer

	// Flags after the file work too; the default key is prefix + file name.
	if err := run([]string{"routes", "push", file, "-consul", addr}, &out, &errb); err != nil {
		t.Fatalf("push: %v (%s)", err, errb.String())
	}
	pair, _, err := client.KV().Get("gateway/routes/users.hcl", nil)
	if err != nil || pair == nil || !strings.Contains(string(pair.Value), `"/api/users"`) {
		t.Fatalf("KV after push: %v %v", pair, err)
	}

	// An explicit key, then an update of it: CAS against the index read.
	if err := run([]string{"routes", "push", "-key", "custom/doc", "-consul", addr, file}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"routes", "push", "-key", "custom/doc", "-consul", addr, file}, &out, &errb); err != nil {
		t.Fatalf("second push to the same key: %v", err)
	}

	// An invalid document is never written, and the error names the KV key.
	bad := writeFile(t, "bad.hcl", "route \"users\" {\n  service = \"users\"\n}\n")
	errb.Reset()
	err = run([]string{"routes", "push", "-key", "gateway/routes/users.hcl", "-consul", addr, bad}, &out, &errb)
	if !errors.Is(err, errInvalidDocs) || !strings.Contains(errb.String(), "gateway/routes/users.hcl:1:") {
		t.Fatalf("bad push: err %v, stderr %q", err, errb.String())
	}
	pair, _, _ = client.KV().Get("gateway/routes/users.hcl", nil)
	if !strings.Contains(string(pair.Value), `"/api/users"`) {
		t.Fatal("an invalid document overwrote the key")
	}

	// -cas guards against overwriting a change made since the operator
	// last read the key: the stale push is refused.
	seen := pair.ModifyIndex
	newer := usersDoc("users", "/api/users") + usersDoc("admin", "/api/admin")
	if _, err := client.KV().Put(&api.KVPair{Key: "gateway/routes/users.hcl", Value: []byte(newer)}, nil); err != nil {
		t.Fatal(err)
	}
	err = run([]string{"routes", "push", "-cas", fmt.Sprint(seen), "-consul", addr, file}, &out, &errb)
	if !errors.Is(err, errConflict) {
		t.Fatalf("stale -cas push: %v, want errConflict", err)
	}
	pair, _, _ = client.KV().Get("gateway/routes/users.hcl", nil)
	if !strings.Contains(string(pair.Value), `"admin"`) {
		t.Fatal("a stale -cas push overwrote a newer change")
	}
	out.Reset()
	if err := run([]string{"routes", "push", "-cas", fmt.Sprint(pair.ModifyIndex), "-consul", addr, file}, &out, &errb); err != nil {
		t.Fatalf("push with the current index: %v", err)
	}
	if !strings.Contains(out.String(), "next time: -cas ") {
		t.Fatalf("push output %q does not give the next index", out.String())
	}

	// A document that clashes with another key (a route name taken) is
	// refused before it is written, as the gateway would reject it.
	clash := writeFile(t, "other.hcl", usersDoc("users", "/api/other"))
	errb.Reset()
	err = run([]string{"routes", "push", "-consul", addr, clash}, &out, &errb)
	if !errors.Is(err, errInvalidDocs) || !strings.Contains(errb.String(), "already defined") {
		t.Fatalf("clashing push: %v %q", err, errb.String())
	}
	if p, _, _ := client.KV().Get("gateway/routes/other.hcl", nil); p != nil {
		t.Fatal("a clashing document was written")
	}
}
