package main

import (
	"encoding/json"
	"net/http"
	"time"
)

// waitRoutes polls the admin /routes until n routes each have want
// instances: the moment the gateway's table is complete.
func waitRoutes(admin string, n, want int) time.Duration {
	// Large tables take a while; poll gently so polling is not the load.
	start := time.Now()
	for time.Since(start) < 120*time.Second {
		if routesReady(admin, n, want) {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	fail("gateway did not load %d routes with %d instances each", n, want)
	return 0
}

func routesReady(admin string, n, want int) bool {
	resp, err := http.Get("http://" + admin + "/routes")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var body struct {
		Routes []struct {
			Instances []json.RawMessage `json:"instances"`
		} `json:"routes"`
	}
	if json.NewDecoder(resp.Body).Decode(&body) != nil || len(body.Routes) != n {
		return false
	}
	for _, r := range body.Routes {
		if len(r.Instances) != want {
			return false
		}
	}
	return true
}
