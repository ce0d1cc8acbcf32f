// Command devcert writes a self-signed certificate for the local demo, so
// trying HTTPS needs no openssl:
//
//	devcert -dir DIR                 # DIR/gateway.crt and DIR/gateway.key
//	devcert -bundle | consul kv put gateway/certs/default -
//
// The certificate is its own CA: pass gateway.crt to curl --cacert.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gatewayco/gateway/internal/devcert"
)

func main() {
	dir := flag.String("dir", "", "write gateway.crt and gateway.key here")
	bundle := flag.Bool("bundle", false, "write one PEM bundle (certificate, then key) to stdout, for a Consul KV key under -cert-prefix")
	names := flag.String("names", "localhost,127.0.0.1,::1", "comma-separated DNS names and IP addresses")
	flag.Parse()
	if (*dir == "") == !*bundle {
		fmt.Fprintln(os.Stderr, "devcert: give exactly one of -dir and -bundle")
		os.Exit(2)
	}
	cert, key, err := devcert.Generate(devcert.Options{Names: strings.Split(*names, ",")})
	if err == nil && *bundle {
		_, err = os.Stdout.Write(append(cert, key...))
	} else if err == nil {
		if err = os.WriteFile(filepath.Join(*dir, "gateway.crt"), cert, 0o644); err == nil {
			err = os.WriteFile(filepath.Join(*dir, "gateway.key"), key, 0o600)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "devcert:", err)
		os.Exit(1)
	}
}
