package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/consul/api"
)

// ErrChanged is returned by PutDocument when the key's ModifyIndex is no
// longer the one given: someone else wrote it since it was read, and
// their change must not be overwritten.
var ErrChanged = errors.New("the key changed since it was read")

// ListDocuments reads every document under prefix once, as the KV watch
// would see it (folder markers left out), for tools that check a new
// document against the ones being served. Documents the token may not
// read make it fail with ErrPermissionDenied, as they make the watch fail.
func ListDocuments(ctx context.Context, client *api.Client, prefix string) ([]Document, error) {
	pairs, meta, err := client.KV().List(prefix, (&api.QueryOptions{}).WithContext(ctx))
	if err = aclChecked(fmt.Sprintf("KV prefix %q", prefix), "key_prefix read", meta, err); err != nil {
		return nil, fmt.Errorf("registry: list %s: %w", prefix, err)
	}
	return toDocuments(pairs), nil
}

// GetDocument reads one key; ok is false when it does not exist.
func GetDocument(ctx context.Context, client *api.Client, key string) (doc Document, ok bool, err error) {
	p, _, err := client.KV().Get(key, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return Document{}, false, fmt.Errorf("registry: read %s: %w", key, err)
	}
	if p == nil {
		return Document{}, false, nil
	}
	return Document{Key: p.Key, Value: p.Value, ModifyIndex: p.ModifyIndex}, true, nil
}

// PutDocument writes value at key with check-and-set: only if the key's
// ModifyIndex is still index (0: only if the key does not exist). It
// returns the key's ModifyIndex after the write, for the next CAS (0 when
// it could not be read back), or ErrChanged when the check failed.
func PutDocument(ctx context.Context, client *api.Client, key string, value []byte, index uint64) (uint64, error) {
	ok, _, err := client.KV().CAS(&api.KVPair{Key: key, Value: value, ModifyIndex: index}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return 0, fmt.Errorf("registry: write %s: %w", key, err)
	}
	if !ok {
		return 0, fmt.Errorf("registry: write %s: %w", key, ErrChanged)
	}
	doc, found, err := GetDocument(ctx, client, key)
	if err != nil || !found {
		// Written, but the new index could not be read back: still a
		// success, with no index to offer for the next write.
		return 0, nil
	}
	return doc.ModifyIndex, nil
}
