package admin

import (
	"time"

	"github.com/gatewayco/gateway/gateway"
)

// aggregateView is an aggregate as /routes shows it.
type aggregateView struct {
	Name      string     `json:"name"`
	SourceKey string     `json:"source_key"`
	Host      string     `json:"host,omitempty"`
	Path      string     `json:"path"`
	Methods   []string   `json:"methods,omitempty"`
	Calls     []callView `json:"calls"`
}

type callView struct {
	Name      string         `json:"name"`
	Service   string         `json:"service"`
	Tag       string         `json:"tag"`
	Path      string         `json:"path"`
	Required  bool           `json:"required"`
	Instances []instanceView `json:"instances"`
	Panic     string         `json:"panic,omitempty"`
}

// aggregateViews lists the table's aggregates with each call's instances;
// never nil, so the JSON shows [] rather than null.
func aggregateViews(t *gateway.Table, now time.Time) []aggregateView {
	out := make([]aggregateView, 0, len(t.Aggregates()))
	for _, ag := range t.Aggregates() {
		c := &ag.Config
		v := aggregateView{Name: c.Name, SourceKey: c.SourceKey, Host: c.Host, Path: c.Path, Methods: c.Methods,
			Calls: make([]callView, len(ag.Calls))}
		for i, call := range ag.Calls {
			cv := callView{Name: call.Config.Name, Service: call.Service.Name, Tag: call.Service.Tag,
				Path: call.Config.Path, Required: call.Config.Required, Instances: instanceViews(call.InstanceStates(now)),
				Panic: call.Panic}
			v.Calls[i] = cv
		}
		out = append(out, v)
	}
	return out
}
