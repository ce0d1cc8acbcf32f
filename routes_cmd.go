package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gatewayco/gateway/gateway"
	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/registry"
)

// errInvalidDocs is returned when validation found problems; the problems
// themselves were already printed, one KEY:LINE:COL line each.
var errInvalidDocs = errors.New("route documents are invalid")

// errConflict is returned when the KV key changed between our read and our
// write (check-and-set failed), so a concurrent push is not overwritten.
var errConflict = errors.New("the key changed since the index given (-cas) or while pushing; read it and push again")

func runRoutes(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError("gateway routes validate DIR|FILE... | gateway routes push FILE [-key KEY] [-cas INDEX]")
	}
	if wantsHelp(args) {
		return routesHelp(args, stdout)
	}
	switch args[0] {
	case "validate":
		return routesValidate(args[1:], stdout, stderr)
	case "push":
		return routesPush(args[1:], stdout, stderr)
	}
	return usageError("unknown routes command %q", args[0])
}

// maxValidateFiles bounds the documents one `routes validate` reads, so a
// directory argument pointing at the wrong tree cannot make it read
// without end; each document is bounded by config.MaxDocumentBytes.
const maxValidateFiles = 10000

// routesValidate checks the documents given, files or directories (every
// *.hcl file under one, recursively, in name order), each alone and then
// all together by the gateway's cross-document rules (route and aggregate
// names unique, no two identical matchers), as if they were the KV
// documents of one prefix: what CI needs to gate a repository of route
// files. Problems are printed FILE:LINE:COL: message, one per line.
func routesValidate(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError("gateway routes validate DIR|FILE...")
	}
	files, err := routeFiles(args)
	if err != nil {
		return err
	}
	bad := false
	var cands []config.Candidate
	docs := map[string]*config.Document{}
	for _, f := range files {
		doc, err := config.ParseFile(f)
		if err != nil {
			fmt.Fprintln(stderr, err)
			bad = true
			continue
		}
		if _, dup := docs[f]; dup {
			continue // named twice, e.g. a file and its directory
		}
		docs[f] = doc
		cands = append(cands, config.Candidate{Key: f, Current: doc})
	}
	_, errs := config.Resolve(cands)
	for _, f := range files {
		doc := docs[f]
		if doc == nil {
			continue
		}
		if es := errs[f]; len(es) > 0 {
			fmt.Fprintln(stderr, es)
			bad = true
			delete(docs, f)
			continue
		}
		if len(doc.Aggregates) > 0 {
			fmt.Fprintf(stdout, "%s: ok (%d routes, %d aggregates)\n", f, len(doc.Routes), len(doc.Aggregates))
		} else {
			fmt.Fprintf(stdout, "%s: ok (%d routes)\n", f, len(doc.Routes))
		}
		delete(docs, f)
	}
	if bad {
		return errInvalidDocs
	}
	return nil
}

// routeFiles expands the arguments of `routes validate`: a file stands
// for itself (whatever its name), a directory for the *.hcl files under
// it.
func routeFiles(args []string) ([]string, error) {
	var files []string
	for _, a := range args {
		info, err := os.Stat(a)
		if err != nil || !info.IsDir() {
			files = append(files, a) // ParseFile reports a missing file
			continue
		}
		var found []string
		err = filepath.WalkDir(a, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && strings.HasSuffix(d.Name(), ".hcl") {
				found = append(found, path)
				if len(files)+len(found) > maxValidateFiles {
					return fmt.Errorf("%w: more than %d route files", errInvalidDocs, maxValidateFiles)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%w: no *.hcl files under %s", errInvalidDocs, a)
		}
		slices.Sort(found)
		files = append(files, found...)
	}
	if len(files) > maxValidateFiles {
		return nil, fmt.Errorf("%w: more than %d route files", errInvalidDocs, maxValidateFiles)
	}
	return files, nil
}

// pushFlags are the settings of "routes push".
type pushFlags struct {
	key, prefix, consul string
	cas                 int64
}

// newPushFlagSet declares the push flags; the compose-file test parses the
// commands it finds with it.
func newPushFlagSet(f *pushFlags, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("routes push", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.key, "key", "", "KV key to write (default: KV prefix + file name)")
	fs.StringVar(&f.prefix, "kv-prefix", "gateway/routes/", "KV prefix used when -key is not given")
	fs.StringVar(&f.consul, "consul", "", "Consul HTTP address (default: CONSUL_HTTP_ADDR or 127.0.0.1:8500)")
	fs.Int64Var(&f.cas, "cas", -1, "write only if the key's ModifyIndex is still this (0: only if absent); push prints the index to use next time")
	return fs
}

func routesPush(args []string, stdout, stderr io.Writer) error {
	var pf pushFlags
	fs := newPushFlagSet(&pf, stderr)
	files, err := splitFlags(fs, args)
	if err != nil {
		return err
	}
	if err := applyEnv(fs, os.LookupEnv); err != nil {
		return err
	}
	if len(files) != 1 {
		return usageError("gateway routes push FILE [-key KEY] [-cas INDEX]")
	}
	src, err := config.ReadDocument(files[0])
	if err != nil {
		return err
	}
	prefix := trimSlash(pf.prefix)
	k := pf.key
	if k == "" {
		k = prefix + filepath.Base(files[0])
	}
	// A document outside the prefix the gateway watches is never served:
	// writing it would report success for a route that does not exist.
	if !strings.HasPrefix(k, prefix) || k == prefix {
		return usageError("-key %q is outside -kv-prefix %q, which the gateway watches (give the gateway's -kv-prefix)", k, prefix)
	}
	// Validate under the KV key's name, the name the gateway will report.
	doc, err := config.Parse(k, src, 0)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return errInvalidDocs
	}
	client, err := registry.NewClient(pf.consul)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	others, err := registry.ListDocuments(ctx, client, prefix)
	if err != nil {
		return err
	}
	// The document must also fit with the others the gateway serves, by
	// the same rules: unique names, no two identical matchers.
	if errs := conflicts(k, doc, others); len(errs) > 0 {
		fmt.Fprintln(stderr, errs)
		return errInvalidDocs
	}
	warnUnknownServices(ctx, client, doc, stderr)
	// CAS index 0 means "only if absent"; otherwise "only if unchanged".
	// With -cas the index is the one the operator last saw, so a change
	// made since by someone else is never overwritten; without it, only a
	// change racing this very push is caught.
	index := uint64(max(pf.cas, 0))
	if pf.cas < 0 {
		cur, found, err := registry.GetDocument(ctx, client, k)
		if err != nil {
			return err
		}
		if found {
			index = cur.ModifyIndex
		}
	}
	next, err := registry.PutDocument(ctx, client, k, src, index)
	switch {
	case errors.Is(err, registry.ErrChanged):
		return errConflict
	case err != nil:
		return err
	case next == 0:
		fmt.Fprintf(stdout, "pushed %s to %s\n", files[0], k)
		return nil
	}
	fmt.Fprintf(stdout, "pushed %s to %s (index %d; next time: -cas %d)\n", files[0], k, next, next)
	return nil
}

// conflicts checks doc, about to be written at key, against the other
// documents under the prefix with the gateway's own cross-document rules,
// treating doc as the newest. Problems of the other documents are theirs
// and not reported.
func conflicts(key string, doc *config.Document, pairs []registry.Document) config.Errors {
	var newest uint64
	cands := []config.Candidate{}
	for _, p := range pairs {
		if p.Key == key || strings.HasSuffix(p.Key, "/") {
			continue
		}
		newest = max(newest, p.ModifyIndex)
		if d, err := config.Parse(p.Key, p.Value, p.ModifyIndex); err == nil {
			cands = append(cands, config.Candidate{Key: p.Key, Current: d, LastGood: d})
		}
	}
	doc.ModifyIndex = newest + 1
	cands = append(cands, config.Candidate{Key: key, Current: doc})
	_, errs := config.Resolve(cands)
	return errs[key]
}

// warnUnknownServices warns, without refusing the push, about each
// service doc's routes name that has no instance in Consul's catalog: a
// typo, or a service not deployed yet (the route answers 503 until it
// is). A failed lookup is a warning too: the push itself decides.
func warnUnknownServices(ctx context.Context, client *api.Client, doc *config.Document, stderr io.Writer) {
	for _, k := range gateway.ServiceKeys(doc.Routes, doc.Aggregates) {
		known, err := registry.KnownService(ctx, client, k)
		switch {
		case err != nil:
			fmt.Fprintf(stderr, "warning: could not ask Consul about service %s: %v\n", k, err)
		case !known:
			fmt.Fprintf(stderr, "warning: service %s is not registered in Consul; its routes answer 503 until it is\n", k)
		}
	}
}
