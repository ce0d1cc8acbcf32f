package acme

import (
	"maps"
	"slices"
)

// Managed returns the hosts whose management has started, sorted.
func Managed(m *Manager) []string {
	m.managedMu.Lock()
	defer m.managedMu.Unlock()
	return slices.Sorted(maps.Keys(m.managed))
}
