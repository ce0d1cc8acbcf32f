package acme

import (
	"context"

	"github.com/caddyserver/certmagic"

	"github.com/gatewayco/gateway/registry"
)

// storage is certmagic's view of a registry.Store: every certificate,
// account key, challenge token and lock certmagic keeps lives in Consul KV,
// so all replicas share them.
type storage struct{ s *registry.Store }

var (
	_ certmagic.Storage = storage{}
)

func (st storage) Lock(ctx context.Context, name string) error   { return st.s.Lock(ctx, name) }
func (st storage) Unlock(ctx context.Context, name string) error { return st.s.Unlock(ctx, name) }

func (st storage) Store(ctx context.Context, key string, value []byte) error {
	return st.s.Store(ctx, key, value)
}

func (st storage) Load(ctx context.Context, key string) ([]byte, error) { return st.s.Load(ctx, key) }

func (st storage) Delete(ctx context.Context, key string) error { return st.s.Delete(ctx, key) }

func (st storage) Exists(ctx context.Context, key string) bool {
	_, err := st.s.Stat(ctx, key)
	return err == nil
}

func (st storage) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	return st.s.List(ctx, path, recursive)
}

func (st storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	info, err := st.s.Stat(ctx, key)
	if err != nil {
		return certmagic.KeyInfo{}, err
	}
	return certmagic.KeyInfo{Key: info.Key, Modified: info.Modified, Size: info.Size, IsTerminal: info.Terminal}, nil
}

// String names the storage in certmagic's logs.
func (st storage) String() string { return "consul-kv" }
