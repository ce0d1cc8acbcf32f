package consultest

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestRestartKeepsAddressAndData(t *testing.T) {
	a := Start(t)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	url := "http://" + a.HTTPAddr + "/v1/kv/consultest/key"

	req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader("kept"))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	a.Stop(t)
	if _, err := client.Get(url); err == nil {
		t.Fatal("agent still answers after Stop")
	}
	a.Stop(t) // idempotent

	a.Restart(t)
	resp, err = client.Get(url + "?raw")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "kept" {
		t.Errorf("after restart: %s %q, want the value written before", resp.Status, body)
	}
}
