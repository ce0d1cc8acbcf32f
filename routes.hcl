# Route document for the local demo (./scripts/dev.sh).
#
# The gateway reads every key under the KV prefix gateway/routes/ (one route
# document per key, any number of `route` blocks per document) and rebuilds its
# routing table whenever a key changes; no restart is needed. Push this file
# with:
#
#   gateway routes validate routes.hcl
#   gateway routes push routes.hcl          # -> key gateway/routes/routes.hcl
#
# Route names (the block labels) must be unique across all documents.

# users: every /api/users/... request goes to the healthy instances of the
# Consul service "users", with "/api" removed, so GET /api/users/42 reaches
# the upstream as GET /users/42. The demo runs two instances; consecutive
# requests alternate between them (see the "instance" field of the answer).
route "users" {
  # What to match. Exactly one of path_prefix and path is required.
  # path_prefix matches any request path that starts with the given string.
  path_prefix = "/api/users"

  # Consul service name the requests are proxied to. Required. Only instances
  # whose health checks are all passing receive traffic.
  service = "users"

  # Removed from the front of the request path before proxying. Optional;
  # default: "" (the path is forwarded unchanged).
  strip_prefix = "/api"

  # Load-balancing policy across the service's passing instances:
  # "round_robin" (smooth weighted), "random" (weighted) or
  # "least_request" (power of two choices on requests in flight), each
  # honouring the instances' Consul weights. Optional; default:
  # "round_robin".
  balancer = "round_robin"

  # Also send to instances whose Consul checks warn (none critical), at
  # their Weights.Warning. Optional; default: false (passing only).
  allow_warning = false
}

# orders: read-only, so only GET is routed here; any other method on
# /api/orders gets 405 from the gateway instead of reaching the service.
route "orders" {
  path_prefix  = "/api/orders"
  service      = "orders"
  strip_prefix = "/api"

  # HTTP methods this route accepts (upper-cased when read, so "get" works
  # too). Optional; default: any method. A request whose path matches but
  # whose method does not gets 405 from the gateway.
  methods = ["GET"]
}

# products: picks a random instance and gives the upstream at most 2s.
route "products" {
  path_prefix  = "/api/products"
  service      = "products"
  strip_prefix = "/api"
  balancer     = "random"

  # Upper bound on the whole upstream exchange, as a Go duration ("500ms",
  # "2s", "1m"). Optional; default: no per-route timeout. When it expires
  # the client gets 504. For a WebSocket it bounds only the handshake.
  timeout = "2s"

  # A WebSocket tunnel through this route is closed after this long with no
  # byte either way. Optional; default: "5m", at most "24h".
  # idle_timeout = "10m"

  # Only send traffic to instances carrying this Consul tag. Optional;
  # default: "" (any instance of the service). The demo services register
  # without tags, so setting it here would leave no instances (503).
  # tag = "v1"
}

# The remaining attributes, shown on a route that is not active in the demo
# (a `host` restriction would stop `curl localhost:8080/...` from matching).
#
# route "users-v1-by-id" {
#   # A single gorilla/mux path template instead of a prefix; variables such
#   # as {id} match one path segment. Mutually exclusive with path_prefix.
#   path = "/v1/users/{id}"
#
#   # Only requests whose Host header is this name (a mux host template) match.
#   # Optional; default: "" (any host). Case, a trailing dot and the default
#   # port do not matter: API.Example.com.:80 is this host too.
#   host = "api.example.com"
#
#   # Match the path in any case (/V1/Users/42 too), for upstreams that treat
#   # paths case-insensitively. Optional; default: false (paths match exactly).
#   case_insensitive = true
#
#   methods  = ["GET", "POST"]
#   service  = "users"
#   tag      = "v1"
#   balancer = "round_robin"
#   timeout  = "5s"
#   # strip_prefix = "/v1" would turn /v1/users/42 into /users/42.
# }

# Upstream protocols, shown on routes that are not active in the demo (its
# services speak HTTP/1.1). A gRPC service's methods live under
# /package.Service/; clients reach the gateway over HTTP/2 (-h2c on the plain
# listener, or the TLS listener). See the README's "Upstream protocols and
# gRPC".
#
# route "orders-grpc" {
#   path_prefix = "/orders.v1.Orders/"
#   service     = "orders-grpc"
#   # "http" (default, HTTP/1.1), "h2c" (HTTP/2 cleartext, gRPC without TLS)
#   # or "https" (TLS, HTTP/2 when the instance offers it).
#   protocol    = "h2c"
#   timeout     = "10s"        # also caps each call's grpc-timeout
# }
#
# route "billing" {
#   path_prefix = "/billing/"
#   service     = "billing"
#   protocol    = "https"
#   # Verification is always on; these say what to verify against.
#   # Optional; default: the system roots and the instance's address.
#   upstream_tls {
#     ca_file     = "/etc/gateway/internal-ca.pem"   # PEM, at most 1 MiB
#     server_name = "billing.internal"
#   }
# }

# Canary: 95 % of /api/accounts to the instances tagged v1, 5 % to v2, and
# every request with the header X-Canary: 1 (or the cookie canary=1) to v2,
# so testers reach it directly. Not active in the demo (its services register
# without tags). Instead of `service`, a route may have up to 8 split blocks;
# the route's balancer, retries, circuit_breaker, protocol and timeout apply
# to each destination. See the README's "Splits".
#
# route "accounts" {
#   path_prefix = "/api/accounts"
#   split {
#     service = "accounts"
#     tag     = "v1"      # optional; default: any instance
#     weight  = 95        # relative share, 0..10000 (0 only with when_*)
#   }
#   split {
#     service     = "accounts"
#     tag         = "v2"
#     weight      = 5
#     # Either map matching (all of its entries, exact values) forces the
#     # destination; forced with no healthy instance, the answer is 503.
#     when_header = { "X-Canary" = "1" }
#     when_cookie = { canary = "1" }
#   }
# }
#
# Shift traffic by writing new weights (50/50, then 5/95; finally drop the v1
# split). A destination without healthy instances loses its share to the
# others.

# Other Consul datacenters, shown on a route that is not active in the demo
# (it runs one datacenter). See the README's "Multiple datacenters".
#
# route "search" {
#   path_prefix = "/api/search"
#   service     = "search"
#   # Read the instances from this datacenter (the health query's ?dc=).
#   # Optional; default: the local agent's.
#   datacenter  = "eu-west"
#   # While eu-west has no passing instance, serve from the first of these
#   # with one (1 to 3); back to eu-west as soon as one passes there.
#   failover {
#     datacenters = ["eu-central", "us-east"]
#   }
# }

# The service mesh (Consul Connect), shown on a route that is not active in
# the demo (it runs no mesh). Needs the gateway started with -connect. See
# the README's "Service mesh (Consul Connect)".
#
# route "billing" {
#   path_prefix = "/api/billing"
#   service     = "billing"
#   # Instances are billing's sidecar proxies and Connect-native instances,
#   # dialled with mTLS under the gateway's leaf certificate; the upstream
#   # must prove it is billing; a deny intention answers 403.
#   connect     = true
# }

# Sticky sessions and mirroring, shown on a route that is not active in the
# demo. See the README's "Sticky sessions" and "Mirroring (shadow traffic)".
#
# route "cart" {
#   path_prefix = "/api/cart"
#   service     = "cart"
#   # A client keeps the instance that first served it while that instance
#   # is passing; the cookie value is a hash, never an address.
#   sticky {
#     cookie    = "gw_sticky"  # required
#     max_age   = "24h"        # optional; default: a session cookie
#     path      = "/"          # optional; default "/"
#     same_site = "lax"        # optional: lax (default), strict, none
#   }
#   # A copy of 10% of the requests goes to cart:v2; its answers are
#   # ignored and it never slows or fails the primary. At most 4 per route.
#   mirror {
#     service         = "cart"
#     tag             = "v2"   # optional
#     percent         = 10     # optional; (0, 100], default 100
#     max_concurrency = 16     # optional; copies in flight, default 16
#   }
# }

# Route policies, shown on a route that is not active in the demo (the demo
# routes work without credentials). Every block is optional; see the README's
# "Route policies" for the full rules.
#
# route "orders-protected" {
#   path_prefix = "/v2/orders"
#   service     = "orders"
#   timeout     = "2s"        # bounds all attempts together
#
#   # Extra attempts on another instance after a connection error or a
#   # 502/503/504; GET/HEAD/OPTIONS only unless retry_non_idempotent = true
#   # (then PUT/DELETE too; POST never). Capped at 20% of recent requests.
#   retries = 2
#   # retry_non_idempotent = true
#
#   # Token bucket per client: 429 with Retry-After when empty.
#   rate_limit {
#     requests_per_second = 50
#     burst               = 100
#     key                 = "ip"        # or "header:X-API-Key", or "jwt:sub"
#   }
#
#   # Bearer-token auth. Pinned algorithms; "none" is never accepted.
#   jwt {
#     algorithms     = ["RS256"]
#     jwks_url       = "https://auth.example.com/.well-known/jwks.json"
#     # public_key_file = "/etc/gateway/jwt.pem"   # instead of jwks_url
#     # secret_env      = "ORDERS_JWT_SECRET"      # for HS256/384/512 instead
#     issuer         = "https://auth.example.com"
#     audience       = "api"
#     forward_claims = { sub = "X-User-Id" }
#   }
#
#   # Alternative to jwt (a route has one or the other): ask a Consul service.
#   # forward_auth {
#   #   service      = "auth"
#   #   path         = "/verify"
#   #   copy_headers = ["X-User-Id"]
#   #   timeout      = "5s"
#   # }
#
#   # Stop calling a failing service for a while.
#   circuit_breaker {
#     failure_ratio = 0.5     # of at least min_requests in the last 10s
#     min_requests  = 20
#     open_timeout  = "30s"
#     serve_stale   = true    # GET: last 200 for the same URL while open
#     fallback {              # otherwise this; without it: 503
#       status       = 200
#       content_type = "application/json"
#       body         = "{\"orders\": []}"
#     }
#   }
# }
# user-dashboard: one request, three services. GET /api/dashboard/42 calls
# users, orders and products at the same time and answers with one JSON
# object holding each call's body under the call's name:
#   {"user": {...}, "orders": {...}, "recommendations": {...}}
# A failed optional call leaves its member null, is described under
# "errors" and sets the header X-Gateway-Partial: true; a failed required
# call fails the whole request. See "Aggregate endpoints" in README.md.
aggregate "user-dashboard" {
  # A gorilla/mux path template; its variables ({id}) fill the calls' paths.
  path    = "/api/dashboard/{id}"
  methods = ["GET"]

  # Bound on the whole request, every call included. Optional; default: none.
  timeout = "2s"

  # Status when a required call times out. Optional; default: 408 (the
  # design document's timeout class); 504 here, as a proxy would answer.
  timeout_status = 504

  # Status when a required call fails with a business error (an upstream
  # 4xx, or a 2xx whose JSON carries a top-level "error"). Optional;
  # default: 200, the body carrying "error"; "upstream" passes the
  # upstream's status on.
  # business_status = "upstream"

  # Optional: rate_limit, jwt or forward_auth blocks, exactly as on a
  # route, admit the client request once before any call. A call may carry
  # retries and a circuit_breaker block, as a route does.
  # Optional: max_concurrency (default: all calls at once),
  # max_response_bytes (per call; default: 10 MiB), forward_headers
  # (passed to every call besides Authorization, X-Request-Id, traceparent
  # and tracestate), e.g. forward_headers = ["X-Tenant"], and balancer
  # (how every call picks an instance, as on a route; default: round_robin).

  call "user" {
    service  = "users"
    path     = "/users/{id}"
    # The response fails if this call fails (a 404 from users is a
    # business error: 200 with "error"; a 5xx is 502, a timeout 504 here).
    required = true
  }
  call "orders" {
    service = "orders"
    # {var} in the query part is escaped as a query value; {query.NAME}
    # would insert the client's query parameter NAME.
    path    = "/orders?user={id}"
    # Optional per-call bound; must not exceed the aggregate's timeout.
    timeout = "800ms"
  }
  call "recommendations" {
    service = "products"
    path    = "/products/recommended?user={id}"
  }
}

# user-profile: the calls' answers cut to what the page needs. Each call
# may take a sub-object (target), keep (fields) or drop (omit) members by
# dot path, rename them, and nest its answer under a member of its choice
# (group) or merge it into the top level (flatten). An array answer is
# shaped element by element. static is merged into every answer.
#   GET /api/profile/42 ->
#   {"api_version":"1","docs":"...","user_id":"42","name":"User 42",
#    "order_ids":[{"id":"o-42-1"},...],"picks":[{"id":"p-2","title":"Mouse"},...]}
aggregate "user-profile" {
  path    = "/api/profile/{id}"
  methods = ["GET"]
  timeout = "2s"

  # An HCL object (or a string of a JSON object, at most 64 KiB), merged
  # first; its members must not collide with any call's. Optional.
  static = { api_version = "1", docs = "https://example.com/docs/profile" }

  call "user" {
    service  = "users"
    path     = "/users/{id}"
    required = true
    # Allow list of dot paths ("address.city" keeps that nested member);
    # at most 128 paths of at most 16 segments. Optional; default: all.
    fields   = ["id", "name"]
    # New names for members, by dot path; applied last. Optional.
    rename   = { id = "user_id" }
    # Merge the members into the top level instead of under "user".
    # Optional; default: false. Two flattened calls whose known members
    # collide are rejected when the document is pushed.
    flatten  = true
  }
  call "orders" {
    service = "orders"
    path    = "/orders?user={id}"
    # Take this member of the answer first; a missing one gives null.
    target  = "orders"
    fields  = ["id"]
    # The member of the merged body. Optional; default: the call's name.
    group   = "order_ids"
  }
  call "recommendations" {
    service = "products"
    path    = "/products/recommended?user={id}"
    target  = "products"
    # Deny list of dot paths, applied after fields. Optional.
    omit    = ["price"]
    rename  = { name = "title" }
    group   = "picks"
  }
}

# orders-summary: a business error. Without ?user= the orders service
# answers 400 {"error": ...}; the required call's business error answers
# 200 with an "error" member (business_status), a system error 502 or 503,
# a timeout 408 (timeout_status).
aggregate "orders-summary" {
  path    = "/api/orders-summary"
  methods = ["GET"]
  call "orders" {
    service  = "orders"
    path     = "/orders?user={query.user}"
    required = true
    target   = "orders"
  }
}
