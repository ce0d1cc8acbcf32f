package certs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
)

// DefaultPollInterval is how often certificate files are re-read. Reading
// the content (not watching inotify events or modification times) catches
// every way a Vault agent or cert-manager replaces files: in place,
// rename-over, or a symlink swap as Kubernetes does for secrets.
const DefaultPollInterval = 5 * time.Second

// Pair is one -tls-cert/-tls-key pair of files.
type Pair struct{ CertFile, KeyFile string }

// Files serves certificate file pairs and reloads them when their content
// changes. A pair that cannot be read or parsed (a half-written file, a
// new certificate with the old key) keeps its last good version, which
// stays served, and is reported in the store's rejections until a good
// version replaces it.
type Files struct {
	store  *Store
	pairs  []Pair
	now    func() time.Time
	logger hclog.Logger
	state  []fileState // per pair; only the polling goroutine touches it
}

type fileState struct {
	cert, key []byte // contents last seen
	good      *Cert
	rejected  *Rejected
}

// NewFiles returns the file source for pairs, publishing into store. now
// is the clock validity is checked against (nil: time.Now); logger gets a
// line per change. The first pair is the default certificate.
func NewFiles(store *Store, pairs []Pair, now func() time.Time, logger hclog.Logger) *Files {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Files{store: store, pairs: pairs, now: now, logger: logger, state: make([]fileState, len(pairs))}
}

// Load reads every pair once and fails if any is unusable: at start a
// bad file is an operator's mistake to report, not to serve around.
func (f *Files) Load() error {
	f.Reload()
	for i, st := range f.state {
		if st.good == nil {
			return fmt.Errorf("tls pair %s, %s: %s", f.pairs[i].CertFile, f.pairs[i].KeyFile, st.rejected.Error)
		}
	}
	return nil
}

// Reload re-reads every pair and publishes the result if anything
// changed. It is what each poll runs; tests call it directly.
func (f *Files) Reload() {
	changed := false
	for i, p := range f.pairs {
		st := &f.state[i]
		cert, err := readBounded(p.CertFile)
		var key []byte
		if err == nil {
			key, err = readBounded(p.KeyFile)
		}
		if err != nil {
			// Forget the contents so the files count as changed once
			// they can be read again.
			st.cert, st.key = nil, nil
			changed = f.reject(i, err) || changed
			continue
		}
		if bytes.Equal(cert, st.cert) && bytes.Equal(key, st.key) {
			continue
		}
		st.cert, st.key = cert, key
		tc, err := ParsePair(cert, key, f.now())
		if err != nil {
			changed = f.reject(i, err) || changed
			continue
		}
		st.good, st.rejected = NewCert(SourceFile, p.CertFile, tc, i == 0), nil
		f.logger.Info("certificate loaded", "file", p.CertFile, "names", st.good.Names, "not_after", st.good.NotAfter)
		changed = true
	}
	if changed {
		f.publish()
	}
}

// reject records err for pair i, reporting whether it is news.
func (f *Files) reject(i int, err error) bool {
	st := &f.state[i]
	if st.rejected != nil && st.rejected.Error == err.Error() {
		return false
	}
	st.rejected = &Rejected{Kind: SourceFile, Source: f.pairs[i].CertFile, Error: err.Error(), At: f.now()}
	msg := "certificate files rejected; serving the last good version"
	if st.good == nil {
		msg = "certificate files rejected; none of theirs is served"
	}
	f.logger.Warn(msg, "file", f.pairs[i].CertFile, "key_file", f.pairs[i].KeyFile, "error", err, "last_good", st.good != nil)
	return true
}

func (f *Files) publish() {
	var certs []*Cert
	var rejected []Rejected
	for _, st := range f.state {
		if st.good != nil {
			certs = append(certs, st.good)
		}
		if st.rejected != nil {
			rejected = append(rejected, *st.rejected)
		}
	}
	f.store.Set(SourceFile, certs, rejected)
}

// Run polls every interval (<= 0: DefaultPollInterval) until ctx is done.
func (f *Files) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f.Reload()
		}
	}
}

// readBounded reads a file of at most MaxBundleBytes: a path pointed at
// something huge (or /dev/zero) must not fill memory.
func readBounded(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, MaxBundleBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxBundleBytes {
		return nil, fmt.Errorf("%s: %w: limit %d bytes", path, ErrTooLarge, MaxBundleBytes)
	}
	return b, nil
}
