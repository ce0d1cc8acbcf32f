package main

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/gatewayco/gateway/gateway/config"
)

// No Docker engine runs where the tests run, so these tests read
// docker-compose.yml and the Dockerfile and check that everything they name
// exists and agrees with the code: flags, ports, files, stages, versions.

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
		Target     string `yaml:"target"`
	} `yaml:"build"`
	Command   []string `yaml:"command"`
	Ports     []string `yaml:"ports"`
	Volumes   []string `yaml:"volumes"`
	DependsOn map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	src, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(src, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

// publishedPort is one "ports" entry: [HOST_IP:]HOST_PORT:CONTAINER_PORT.
type publishedPort struct {
	hostIP              string
	hostPort, container int
}

func parsePort(t *testing.T, spec string) publishedPort {
	t.Helper()
	parts := strings.Split(spec, ":")
	var p publishedPort
	var err1, err2 error
	switch len(parts) {
	case 2:
		p.hostPort, err1 = strconv.Atoi(parts[0])
		p.container, err2 = strconv.Atoi(parts[1])
	case 3:
		p.hostIP = parts[0]
		p.hostPort, err1 = strconv.Atoi(parts[1])
		p.container, err2 = strconv.Atoi(parts[2])
	default:
		t.Fatalf("port %q: want [HOST_IP:]HOST_PORT:CONTAINER_PORT", spec)
	}
	if err1 != nil || err2 != nil {
		t.Fatalf("port %q: %v %v", spec, err1, err2)
	}
	return p
}

func TestComposeFileAgreesWithTheCode(t *testing.T) {
	c := loadCompose(t)
	stages := parseDockerfile(t, "Dockerfile")

	for name, s := range c.Services {
		if s.Build != nil {
			if st, err := os.Stat(s.Build.Context); err != nil || !st.IsDir() {
				t.Errorf("%s: build context %q: %v", name, s.Build.Context, err)
			}
			df := cmpOr(s.Build.Dockerfile, "Dockerfile")
			if _, err := os.Stat(filepath.Join(s.Build.Context, df)); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			if stageNamed(stages, s.Build.Target) == nil {
				t.Errorf("%s: build target %q is not a Dockerfile stage", name, s.Build.Target)
			}
		} else if s.Image == "" {
			t.Errorf("%s: neither build nor image", name)
		}
		for dep, d := range s.DependsOn {
			other, ok := c.Services[dep]
			if !ok {
				t.Errorf("%s depends on unknown service %s", name, dep)
			}
			if d.Condition == "service_healthy" && other.Healthcheck == nil {
				t.Errorf("%s waits for %s to be healthy, but it has no healthcheck", name, dep)
			}
		}
	}

	// Consul: the version the integration tests run, reachable by the
	// other containers, with a healthcheck the others wait on.
	consul, ok := c.Services["consul"]
	if !ok {
		t.Fatal("no consul service")
	}
	script, _ := os.ReadFile("scripts/install-consul.sh")
	if v := regexp.MustCompile(`1\.\d+\.\d+`).Find(script); consul.Image != "hashicorp/consul:"+string(v) {
		t.Errorf("consul image %q, want hashicorp/consul:%s (the version tests run)", consul.Image, v)
	}
	if i := slices.Index(consul.Command, "-client"); i < 0 || consul.Command[i+1] != "0.0.0.0" {
		t.Errorf("consul command %v: the API must listen on 0.0.0.0 for other containers", consul.Command)
	}
	// Healthy only with a leader: `consul members` (or `consul info`)
	// succeeds on an agent that has none, and the gateway's first reads
	// are consistent ones, which need it.
	if consul.Healthcheck == nil || !slices.Equal(consul.Healthcheck.Test, []string{"CMD", "consul", "operator", "raft", "list-peers"}) {
		t.Errorf("consul healthcheck %v, want [CMD consul operator raft list-peers], which fails until a leader is elected", consul.Healthcheck)
	}
	checkConsulFlag := func(who, addr string) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host != "consul" || port != "8500" {
			t.Errorf("%s: -consul %q, want consul:8500 (the consul service's HTTP API)", who, addr)
		}
	}

	// The gateway: real flags, published ports that match its listeners.
	gw, ok := c.Services["gateway"]
	if !ok || gw.Build == nil || gw.Build.Target != "gateway" {
		t.Fatal("no gateway service built from the gateway target")
	}
	var f serveFlags
	fs := newServeFlagSet(&f, io.Discard)
	if err := fs.Parse(gw.Command); err != nil || fs.NArg() != 0 {
		t.Fatalf("gateway command %v: %v (extra args %v)", gw.Command, err, fs.Args())
	}
	checkConsulFlag("gateway", f.consul)
	listenHost, listenPort, _ := splitHostPort(f.listen)
	adminHost, adminPort, _ := splitHostPort(f.admin)
	if listenHost != "0.0.0.0" {
		t.Errorf("-listen %s: a container must listen on 0.0.0.0 for the port to be published", f.listen)
	}
	ports := map[int]publishedPort{}
	for _, spec := range gw.Ports {
		p := parsePort(t, spec)
		ports[p.container] = p
	}
	if p, ok := ports[listenPort]; !ok || p.hostPort != 8080 {
		t.Errorf("public listener port %d is not published on host port 8080 (ports %v)", listenPort, gw.Ports)
	}
	p, ok := ports[adminPort]
	if !ok {
		t.Errorf("admin port %d is not published", adminPort)
	}
	// Binding the admin listener to all interfaces is only safe because
	// the host side is loopback.
	if unspecified(adminHost) && p.hostIP != "127.0.0.1" {
		t.Errorf("admin listens on %s and is published as %q: publish it on 127.0.0.1 only", f.admin, gw.Ports)
	}
	// Its container health check is `gateway health` (distroless has no
	// shell or curl) asking the admin listener's port on loopback.
	if gw.Healthcheck == nil || len(gw.Healthcheck.Test) < 3 || gw.Healthcheck.Test[0] != "CMD" ||
		gw.Healthcheck.Test[1] != "/usr/local/bin/gateway" || gw.Healthcheck.Test[2] != "health" {
		t.Errorf("gateway healthcheck %v, want [CMD /usr/local/bin/gateway health ...]", gw.Healthcheck)
	} else {
		var hf healthFlags
		hfs := newHealthFlagSet(&hf, io.Discard)
		if err := hfs.Parse(gw.Healthcheck.Test[3:]); err != nil || hfs.NArg() != 0 {
			t.Errorf("gateway healthcheck %v: %v", gw.Healthcheck.Test, err)
		}
		if host, port, _ := splitHostPort(hf.admin); port != adminPort || (host != "127.0.0.1" && !unspecified(host)) {
			t.Errorf("gateway healthcheck asks %s, want the admin port %d on loopback", hf.admin, adminPort)
		}
	}
	if st := stageNamed(stages, "gateway"); st == nil || !slices.Equal(st.entrypoint, []string{"/usr/local/bin/gateway"}) {
		t.Error("the gateway stage's entrypoint is not /usr/local/bin/gateway, which the healthcheck runs")
	}
	tlsHost, tlsPort, _ := splitHostPort(f.tls.listen)
	if p, ok := ports[tlsPort]; tlsHost != "0.0.0.0" || !ok || p.hostPort != 8443 {
		t.Errorf("-tls-listen %q is not on 0.0.0.0 published on host port 8443 (ports %v)", f.tls.listen, gw.Ports)
	}
	if len(ports) != len(gw.Ports) || len(ports) != 3 {
		t.Errorf("gateway publishes %v; want exactly the public, TLS and admin ports", gw.Ports)
	}
	if f.self.register && f.self.advertise != "gateway" {
		t.Errorf("-register with -advertise %q: Consul's check must reach the container by its service name", f.self.advertise)
	}

	// The routes job: a real push command on a mounted file that exists
	// and is a valid route document.
	rs, ok := c.Services["routes"]
	if !ok || rs.Build == nil || rs.Build.Target != "gateway" {
		t.Fatal("no routes service built from the gateway target")
	}
	if len(rs.Command) < 2 || rs.Command[0] != "routes" || rs.Command[1] != "push" {
		t.Fatalf("routes command %v, want routes push ...", rs.Command)
	}
	var pf pushFlags
	files, err := splitFlags(newPushFlagSet(&pf, io.Discard), rs.Command[2:])
	if err != nil || len(files) != 1 {
		t.Fatalf("routes push args %v: %v, files %v", rs.Command[2:], err, files)
	}
	checkConsulFlag("routes", pf.consul)
	if rs.DependsOn["consul"].Condition != "service_healthy" {
		t.Error("routes must wait for consul to be healthy")
	}
	var hostFile string
	for _, v := range rs.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == files[0] {
			hostFile = parts[0]
		}
	}
	if hostFile == "" {
		t.Fatalf("routes pushes %s, which no volume mounts (%v)", files[0], rs.Volumes)
	}
	doc, err := config.ParseFile(hostFile)
	if err != nil {
		t.Fatalf("mounted route file %s: %v", hostFile, err)
	}
	if cond := gw.DependsOn["routes"].Condition; cond != "service_completed_successfully" {
		t.Errorf("gateway waits for routes with %q, want service_completed_successfully", cond)
	}

	// Every service the routes use has demo instances; users has two.
	instances := map[string]int{}
	for name, s := range c.Services {
		if s.Build == nil || s.Build.Target != "demo-service" {
			continue
		}
		if i := slices.Index(s.Command, "-name"); i >= 0 && i+1 < len(s.Command) {
			instances[s.Command[i+1]]++
		} else {
			t.Errorf("%s: demo service without -name", name)
		}
		if i := slices.Index(s.Command, "-consul"); i < 0 || i+1 >= len(s.Command) {
			t.Errorf("%s: demo service without -consul", name)
		} else {
			checkConsulFlag(name, s.Command[i+1])
		}
	}
	for _, r := range doc.Routes {
		if instances[r.Service] == 0 {
			t.Errorf("route %s uses service %s, which no demo container plays", r.Name, r.Service)
		}
	}
	if instances["users"] != 2 || instances["orders"] != 1 || instances["products"] != 1 {
		t.Errorf("demo instances %v, want users x2, orders, products", instances)
	}
}

func TestReadmeDockerSectionNamesTheComposeCommands(t *testing.T) {
	readme, err := os.ReadFile("docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Docker\n")
	if !ok {
		t.Fatal("docs/operations.md has no \"## Docker\" section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	for _, want := range []string{"docker compose up --build", "curl localhost:8080/api/users/", "docker compose run --rm routes",
		"http://localhost:8081/", "docker compose down"} {
		if !strings.Contains(section, want) {
			t.Errorf("docs/operations.md Docker section lacks %q", want)
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
