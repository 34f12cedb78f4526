//! Writes a deterministic, valid and realistically shaped synthetic policy tree.
//!
//! The tree is planned first (namespaces, workloads, which workload each policy protects), then
//! written namespace by namespace, so memory stays small whatever the size. Every random choice
//! comes from a generator seeded by (seed, stream, index): the same arguments give the same bytes.
//!
//! Validity is by construction: every policy's own selector names labels of a workload it was
//! built around (or is `{}` in a namespace that has workloads), named ports are ports of the pods
//! they refer to, CIDRs have no host bits and excepts lie strictly inside them, HTTP rules sit
//! only on TCP ports, and no rule allows egress to the whole internet on all ports.

use crate::emit::{to_json, to_yaml, V};
use crate::{list, map};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What to generate.
#[derive(Clone, Debug)]
pub struct Config {
    pub policies: usize,
    pub workloads: usize,
    /// Namespaces including `kube-system`; `None` picks one per ~200 workloads (3 to 500).
    pub namespaces: Option<usize>,
    pub seed: u64,
}

impl Config {
    pub fn new(policies: usize, workloads: usize) -> Self {
        Config {
            policies,
            workloads,
            namespaces: None,
            seed: 1,
        }
    }

    fn namespace_count(&self) -> usize {
        self.namespaces
            .unwrap_or_else(|| (self.workloads / 200).clamp(3, 500).min(self.workloads))
    }
}

/// What was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub files: usize,
    pub json_files: usize,
    pub bytes: u64,
    /// YAML/JSON documents; a `List` is one document holding several objects.
    pub documents: usize,
    pub namespaces: usize,
    pub workloads: usize,
    pub services: usize,
    pub network_policies: usize,
    pub cilium_policies: usize,
    pub clusterwide_policies: usize,
}

/// One line: files, size, and objects by kind (what the benchmarks print as `tree:`).
impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} files ({} JSON), {:.1} MB, {} objects = {} namespaces + {} workloads + {} services + {} policies \
             ({} NetworkPolicy, {} CiliumNetworkPolicy, {} CiliumClusterwideNetworkPolicy)",
            self.files,
            self.json_files,
            self.bytes as f64 / 1e6,
            self.objects(),
            self.namespaces,
            self.workloads,
            self.services,
            self.policies(),
            self.network_policies,
            self.cilium_policies,
            self.clusterwide_policies
        )
    }
}

impl Stats {
    pub fn policies(&self) -> usize {
        self.network_policies + self.cilium_policies + self.clusterwide_policies
    }

    /// Kubernetes objects: namespaces, workloads, services and policies.
    pub fn objects(&self) -> usize {
        self.namespaces + self.workloads + self.services + self.policies()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("invalid tree size: {0}")]
    Config(String),
    #[error("cannot write `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// SplitMix64: tiny, fast, and good enough to pick names and shapes.
struct Rng(u64);

impl Rng {
    fn for_item(seed: u64, stream: u64, index: usize) -> Rng {
        let mut r = Rng(seed
            ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
        r.next_u64();
        r
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`; `n` must be positive.
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    fn range(&mut self, lo: u32, hi_inclusive: u32) -> u32 {
        lo + self.below((hi_inclusive - lo + 1) as usize) as u32
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const STREAM_NAMESPACE: u64 = 1;
const STREAM_WORKLOAD: u64 = 2;
const STREAM_POLICY_PLAN: u64 = 3;
const STREAM_POLICY_BODY: u64 = 4;

#[derive(Debug)]
struct Port {
    name: &'static str,
    port: u16,
    proto: &'static str,
}

const fn tcp(name: &'static str, port: u16) -> Port {
    Port {
        name,
        port,
        proto: "TCP",
    }
}

const fn udp(name: &'static str, port: u16) -> Port {
    Port {
        name,
        port,
        proto: "UDP",
    }
}

struct App {
    base: &'static str,
    tier: &'static str,
    ports: &'static [Port],
}

const fn app(base: &'static str, tier: &'static str, ports: &'static [Port]) -> App {
    App { base, tier, ports }
}

const DEPLOYMENT_APPS: &[App] = &[
    app(
        "web",
        "frontend",
        &[tcp("http", 8080), tcp("metrics", 9090)],
    ),
    app(
        "storefront",
        "frontend",
        &[tcp("http", 8080), tcp("metrics", 9090)],
    ),
    app("admin-ui", "frontend", &[tcp("http", 8080)]),
    app(
        "gateway",
        "frontend",
        &[tcp("http", 8080), tcp("https", 8443), tcp("metrics", 9090)],
    ),
    app(
        "api",
        "backend",
        &[tcp("http", 8080), tcp("grpc", 9000), tcp("metrics", 9090)],
    ),
    app(
        "orders",
        "backend",
        &[tcp("http", 8080), tcp("grpc", 9000), tcp("metrics", 9090)],
    ),
    app(
        "cart",
        "backend",
        &[tcp("http", 8080), tcp("metrics", 9090)],
    ),
    app("users", "backend", &[tcp("http", 8080), tcp("grpc", 9000)]),
    app(
        "auth",
        "backend",
        &[tcp("http", 8080), tcp("metrics", 9090)],
    ),
    app(
        "recommendations",
        "backend",
        &[tcp("grpc", 9000), tcp("metrics", 9090)],
    ),
    app(
        "notifications",
        "backend",
        &[tcp("http", 8080), tcp("metrics", 9090)],
    ),
    app(
        "worker",
        "worker",
        &[tcp("metrics", 9090), udp("statsd", 8125)],
    ),
    app("scheduler", "worker", &[tcp("metrics", 9090)]),
    app("memcached", "cache", &[tcp("memcache", 11211)]),
];

const STATEFUL_APPS: &[App] = &[
    app(
        "postgres",
        "db",
        &[tcp("postgres", 5432), tcp("metrics", 9187)],
    ),
    app("mysql", "db", &[tcp("mysql", 3306)]),
    app("mongodb", "db", &[tcp("mongo", 27017)]),
    app(
        "redis",
        "cache",
        &[tcp("redis", 6379), tcp("metrics", 9121)],
    ),
    app(
        "kafka",
        "queue",
        &[
            tcp("kafka", 9092),
            tcp("internal", 9093),
            tcp("metrics", 9308),
        ],
    ),
    app(
        "rabbitmq",
        "queue",
        &[tcp("amqp", 5672), tcp("management", 15672)],
    ),
    app(
        "nats",
        "queue",
        &[
            tcp("client", 4222),
            tcp("cluster", 6222),
            tcp("monitor", 8222),
        ],
    ),
];

const DAEMON_APPS: &[App] = &[
    app("node-exporter", "agent", &[tcp("metrics", 9100)]),
    app(
        "log-agent",
        "agent",
        &[tcp("forward", 24224), udp("forward-udp", 24224)],
    ),
    app(
        "trace-agent",
        "agent",
        &[tcp("otlp-grpc", 4317), tcp("otlp-http", 4318)],
    ),
];

const POD_APPS: &[App] = &[
    app("toolbox", "debug", &[tcp("http", 8080)]),
    app("migrate", "job", &[tcp("metrics", 9090)]),
    app(
        "canary-probe",
        "test",
        &[tcp("http", 8080), tcp("metrics", 9090)],
    ),
];

const COREDNS: App = app(
    "coredns",
    "system",
    &[udp("dns", 53), tcp("dns-tcp", 53), tcp("metrics", 9153)],
);

const TEAMS: &[&str] = &[
    "payments",
    "checkout",
    "catalog",
    "search",
    "identity",
    "billing",
    "shipping",
    "ads",
    "analytics",
    "platform",
    "messaging",
    "media",
    "support",
    "inventory",
    "pricing",
    "fraud",
];
const ENVS: &[&str] = &["prod", "staging", "dev"];
const VERSIONS: &[&str] = &["v1", "v2", "v3"];
const FQDN_NAMES: &[&str] = &[
    "api.stripe.com",
    "api.github.com",
    "hooks.slack.com",
    "login.microsoftonline.com",
    "oauth2.googleapis.com",
    "api.sendgrid.com",
];
const FQDN_PATTERNS: &[&str] = &[
    "*.s3.amazonaws.com",
    "*.googleapis.com",
    "*.blob.core.windows.net",
    "*.datadoghq.com",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
    Pod,
}

struct Namespace {
    name: String,
    team: &'static str,
    env: &'static str,
    workloads: Vec<usize>,
}

struct Workload {
    ns: usize,
    name: String,
    kind: Kind,
    app: &'static App,
    version: &'static str,
    replicas: u32,
    service: bool,
    /// `kube-dns` in kube-system, labelled like upstream CoreDNS.
    system: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PolicyKind {
    Network,
    Cilium,
    Clusterwide,
}

struct Plan {
    namespaces: Vec<Namespace>,
    workloads: Vec<Workload>,
    /// Per namespace, the (policy index, kind, anchor workload) it holds.
    policies: Vec<Vec<(usize, PolicyKind, usize)>>,
    clusterwide: Vec<(usize, usize)>,
}

fn plan(cfg: &Config) -> Result<Plan, GenError> {
    let k = cfg.namespace_count();
    if k < 2 {
        return Err(GenError::Config(format!(
            "need at least 2 namespaces (kube-system and one for applications), got {k}"
        )));
    }
    if cfg.workloads < k {
        return Err(GenError::Config(format!(
            "need at least one workload per namespace: {} workloads for {k} namespaces",
            cfg.workloads
        )));
    }
    let mut namespaces = vec![Namespace {
        name: "kube-system".into(),
        team: "platform",
        env: "prod",
        workloads: vec![0],
    }];
    for i in 1..k {
        let n = i - 1;
        let team = TEAMS[n % TEAMS.len()];
        let env = ENVS[(n / TEAMS.len()) % ENVS.len()];
        let round = n / (TEAMS.len() * ENVS.len());
        let name = if round == 0 {
            format!("{team}-{env}")
        } else {
            format!("{team}-{env}-{round}")
        };
        namespaces.push(Namespace {
            name,
            team,
            env,
            workloads: Vec::new(),
        });
    }
    // Uneven namespace sizes: weights 1..=5, cumulative for a binary search.
    let mut cumulative = Vec::with_capacity(k - 1);
    let mut total = 0usize;
    for i in 1..k {
        total += 1 + Rng::for_item(cfg.seed, STREAM_NAMESPACE, i).below(5);
        cumulative.push(total);
    }

    let mut workloads = vec![Workload {
        ns: 0,
        name: "coredns".into(),
        kind: Kind::Deployment,
        app: &COREDNS,
        version: "v1",
        replicas: 2,
        service: true,
        system: true,
    }];
    let mut per_ns_count = vec![0usize; k];
    for j in 1..cfg.workloads {
        let mut rng = Rng::for_item(cfg.seed, STREAM_WORKLOAD, j);
        // INVARIANT: the first k-1 workloads go one to each application namespace.
        let ns = if j < k {
            j
        } else {
            let r = rng.below(total);
            1 + cumulative.partition_point(|&c| c <= r)
        };
        let first_in_ns = j < k;
        let kind = match rng.below(100) {
            _ if j == 1 => Kind::Deployment,
            0..=69 => Kind::Deployment,
            70..=84 => Kind::StatefulSet,
            85..=89 => Kind::DaemonSet,
            _ => Kind::Pod,
        };
        let app = match kind {
            Kind::Deployment => rng.pick(DEPLOYMENT_APPS),
            Kind::StatefulSet => rng.pick(STATEFUL_APPS),
            Kind::DaemonSet => rng.pick(DAEMON_APPS),
            Kind::Pod => rng.pick(POD_APPS),
        };
        per_ns_count[ns] += 1;
        let service =
            matches!(kind, Kind::Deployment | Kind::StatefulSet) && (first_in_ns || rng.chance(45));
        workloads.push(Workload {
            ns,
            name: format!("{}-{}", app.base, per_ns_count[ns]),
            kind,
            app,
            version: VERSIONS[rng.below(VERSIONS.len())],
            replicas: rng.range(1, 5),
            service,
            system: false,
        });
        namespaces[ns].workloads.push(j);
    }

    let mut policies = vec![Vec::new(); k];
    let mut clusterwide = Vec::new();
    for i in 0..cfg.policies {
        let mut rng = Rng::for_item(cfg.seed, STREAM_POLICY_PLAN, i);
        let anchor = 1 + rng.below(cfg.workloads - 1);
        match i % 20 {
            0 => clusterwide.push((i, anchor)),
            1..=7 => policies[workloads[anchor].ns].push((i, PolicyKind::Cilium, anchor)),
            _ => policies[workloads[anchor].ns].push((i, PolicyKind::Network, anchor)),
        }
    }
    Ok(Plan {
        namespaces,
        workloads,
        policies,
        clusterwide,
    })
}

impl Plan {
    fn ns_of(&self, w: &Workload) -> &Namespace {
        &self.namespaces[w.ns]
    }

    fn pod_labels(&self, w: &Workload) -> V {
        if w.system {
            return map! { "k8s-app" => "kube-dns" };
        }
        map! {
            "app" => &w.name,
            "tier" => w.app.tier,
            "version" => w.version,
            "app.kubernetes.io/part-of" => self.ns_of(w).team,
        }
    }

    /// Labels of the object itself (the pod template carries the full set).
    fn object_labels(&self, w: &Workload) -> V {
        if w.system || w.kind == Kind::Pod {
            return self.pod_labels(w);
        }
        map! { "app" => &w.name, "app.kubernetes.io/part-of" => self.ns_of(w).team }
    }

    fn selector_labels(&self, w: &Workload) -> V {
        if w.system {
            map! { "k8s-app" => "kube-dns" }
        } else {
            map! { "app" => &w.name }
        }
    }

    fn namespace_object(&self, i: usize, seed: u64) -> V {
        let ns = &self.namespaces[i];
        let mut labels = map! { "kubernetes.io/metadata.name" => &ns.name };
        if i > 0 {
            labels.push("team", ns.team);
            labels.push("env", ns.env);
            let level = if Rng::for_item(seed, STREAM_NAMESPACE, i).chance(50) {
                "restricted"
            } else {
                "baseline"
            };
            labels.push("pod-security.kubernetes.io/enforce", level);
        }
        map! {
            "apiVersion" => "v1",
            "kind" => "Namespace",
            "metadata" => map! { "name" => &ns.name, "labels" => labels },
        }
    }

    fn container(&self, w: &Workload) -> V {
        let ns = self.ns_of(w);
        let mut ports = Vec::new();
        for p in w.app.ports {
            ports.push(map! { "name" => p.name, "containerPort" => p.port, "protocol" => p.proto });
        }
        let probe = match w.app.ports.iter().find(|p| p.name == "http") {
            Some(_) => map! { "httpGet" => map! { "path" => "/healthz", "port" => "http" } },
            None => {
                let first_tcp = w
                    .app
                    .ports
                    .iter()
                    .find(|p| p.proto == "TCP")
                    .map_or("metrics", |p| p.name);
                map! { "tcpSocket" => map! { "port" => first_tcp } }
            }
        };
        let mut probe = probe;
        probe.push("periodSeconds", 10i64);
        let image = if w.system {
            "registry.k8s.io/coredns/coredns:v1.11.3".to_string()
        } else {
            format!(
                "registry.example.com/{}/{}:1.{}.{}",
                ns.team,
                w.app.base,
                w.name.len() % 9,
                w.replicas
            )
        };
        map! {
            "name" => w.app.base,
            "image" => image,
            "ports" => V::L(ports),
            "resources" => map! { "requests" => map! { "cpu" => "100m", "memory" => "128Mi" } },
            "readinessProbe" => probe,
        }
    }

    fn pod_spec(&self, w: &Workload) -> V {
        let mut spec = map! {};
        if w.kind != Kind::Pod {
            spec.push("serviceAccountName", &w.name);
        }
        if !w.system {
            spec.push(
                "securityContext",
                map! { "runAsNonRoot" => true, "runAsUser" => 10001i64 },
            );
        }
        if w.kind == Kind::DaemonSet {
            spec.push("tolerations", list![map! { "operator" => "Exists" }]);
        }
        spec.push("containers", list![self.container(w)]);
        if w.kind == Kind::Pod {
            spec.push("restartPolicy", "Always");
        }
        spec
    }

    fn workload_object(&self, w: &Workload) -> V {
        let ns = self.ns_of(w);
        let metadata =
            map! { "name" => &w.name, "namespace" => &ns.name, "labels" => self.object_labels(w) };
        if w.kind == Kind::Pod {
            return map! {
                "apiVersion" => "v1",
                "kind" => "Pod",
                "metadata" => metadata,
                "spec" => self.pod_spec(w),
            };
        }
        let template = map! {
            "metadata" => map! {
                "labels" => self.pod_labels(w),
                "annotations" => map! { "prometheus.io/scrape" => "true", "prometheus.io/port" => "9090" },
            },
            "spec" => self.pod_spec(w),
        };
        let selector = map! { "matchLabels" => self.selector_labels(w) };
        let spec = match w.kind {
            Kind::Deployment => map! {
                "replicas" => w.replicas,
                "selector" => selector,
                "template" => template,
            },
            Kind::StatefulSet => map! {
                "serviceName" => &w.name,
                "replicas" => w.replicas,
                "selector" => selector,
                "template" => template,
                "volumeClaimTemplates" => list![map! {
                    "metadata" => map! { "name" => "data" },
                    "spec" => map! {
                        "accessModes" => list!["ReadWriteOnce"],
                        "resources" => map! { "requests" => map! { "storage" => "10Gi" } },
                    },
                }],
            },
            Kind::DaemonSet | Kind::Pod => map! {
                "selector" => selector,
                "updateStrategy" => map! { "type" => "RollingUpdate" },
                "template" => template,
            },
        };
        let kind = match w.kind {
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
            Kind::Pod => "Pod",
        };
        map! { "apiVersion" => "apps/v1", "kind" => kind, "metadata" => metadata, "spec" => spec }
    }

    fn service_object(&self, w: &Workload) -> V {
        let ns = self.ns_of(w);
        let name = if w.system {
            "kube-dns"
        } else {
            w.name.as_str()
        };
        let mut ports = Vec::new();
        for p in w.app.ports {
            let port = if p.name == "http" { 80 } else { p.port };
            ports.push(map! { "name" => p.name, "port" => port, "targetPort" => p.name, "protocol" => p.proto });
        }
        let mut spec = map! { "selector" => self.selector_labels(w) };
        if w.kind == Kind::StatefulSet {
            spec.push("clusterIP", "None");
        }
        spec.push("ports", V::L(ports));
        map! {
            "apiVersion" => "v1",
            "kind" => "Service",
            "metadata" => map! { "name" => name, "namespace" => &ns.name, "labels" => self.selector_labels(w) },
            "spec" => spec,
        }
    }

    /// A random application workload in the same namespace as `w` (possibly `w` itself).
    fn same_ns_peer(&self, rng: &mut Rng, w: &Workload) -> &Workload {
        let ids = &self.ns_of(w).workloads;
        &self.workloads[*rng.pick(ids)]
    }

    fn any_peer(&self, rng: &mut Rng) -> &Workload {
        &self.workloads[1 + rng.below(self.workloads.len() - 1)]
    }
}

/// A CIDR and the blocks carved out of it; no host bits anywhere, excepts strictly inside.
fn cidr_block(rng: &mut Rng) -> (String, Vec<String>) {
    match rng.below(5) {
        0 | 1 => {
            let a = rng.below(256);
            let b = rng.below(256);
            (format!("10.{a}.0.0/16"), vec![format!("10.{a}.{b}.0/24")])
        }
        2 => (format!("192.168.{}.0/24", rng.below(256)), Vec::new()),
        3 => {
            let a = 16 + rng.below(16);
            let b = rng.below(255);
            (
                format!("172.{a}.0.0/16"),
                vec![
                    format!("172.{a}.{b}.0/24"),
                    format!("172.{a}.{}.0/24", b + 1),
                ],
            )
        }
        _ => {
            let (a, b, c, d) = (
                rng.below(256),
                1 + rng.below(0xfffe),
                1 + rng.below(0xfffe),
                1 + rng.below(0xfffe),
            );
            (
                format!("fd{a:02x}:{b:x}:{c:x}::/48"),
                vec![format!("fd{a:02x}:{b:x}:{c:x}:{d:x}::/64")],
            )
        }
    }
}

fn np_ip_block(rng: &mut Rng) -> V {
    let (cidr, except) = cidr_block(rng);
    let mut block = map! { "cidr" => cidr };
    if !except.is_empty() {
        block.push("except", V::L(except.into_iter().map(V::S).collect()));
    }
    map! { "ipBlock" => block }
}

fn cilium_cidr_set(rng: &mut Rng) -> V {
    let (cidr, except) = cidr_block(rng);
    let mut entry = map! { "cidr" => cidr };
    if !except.is_empty() {
        entry.push("except", V::L(except.into_iter().map(V::S).collect()));
    }
    list![entry]
}

/// A NetworkPolicy port of a pod: by name or by number.
fn np_port(rng: &mut Rng, p: &Port) -> V {
    let mut v = map! {};
    if p.proto != "TCP" || !rng.chance(25) {
        v.push("protocol", p.proto);
    }
    if rng.chance(50) {
        v.push("port", p.name);
    } else {
        v.push("port", p.port);
    }
    v
}

fn np_ports(rng: &mut Rng, w: &Workload) -> V {
    let mut ports = Vec::new();
    let first = rng.below(w.app.ports.len());
    ports.push(np_port(rng, &w.app.ports[first]));
    if w.app.ports.len() > 1 && rng.chance(30) {
        let second = (first + 1) % w.app.ports.len();
        ports.push(np_port(rng, &w.app.ports[second]));
    }
    V::L(ports)
}

fn cilium_port(p: &Port) -> V {
    map! { "port" => p.port.to_string(), "protocol" => p.proto }
}

/// `toPorts` for ports of `w`, with HTTP rules on the `http` port now and then.
fn cilium_to_ports(rng: &mut Rng, w: &Workload) -> V {
    let p = rng.pick(w.app.ports);
    let mut entry = map! { "ports" => list![cilium_port(p)] };
    if p.name == "http" && p.proto == "TCP" && rng.chance(45) {
        let base = w.app.base;
        let mut rules = vec![map! { "method" => "GET", "path" => format!("/api/v1/{base}/.*") }];
        if rng.chance(50) {
            rules.push(map! { "method" => "POST", "path" => format!("/api/v1/{base}") });
        }
        if rng.chance(30) {
            rules.push(map! { "method" => "GET", "path" => "/healthz" });
        }
        entry.push("rules", map! { "http" => V::L(rules) });
    } else if w.app.ports.len() > 1 && rng.chance(25) {
        // A second port in the same entry; never with L7 rules, which need every port TCP.
        let other = w.app.ports.iter().find(|q| q.name != p.name).unwrap_or(p);
        if let V::M(entries) = &mut entry {
            entries[0].1 = list![cilium_port(p), cilium_port(other)];
        }
    }
    list![entry]
}

fn kube_dns_rule(prefixed: bool) -> V {
    let (ns_key, app_key) = if prefixed {
        ("k8s:io.kubernetes.pod.namespace", "k8s:k8s-app")
    } else {
        ("io.kubernetes.pod.namespace", "k8s-app")
    };
    map! {
        "toEndpoints" => list![map! { "matchLabels" => map! { ns_key => "kube-system", app_key => "kube-dns" } }],
        "toPorts" => list![map! {
            "ports" => list![map! { "port" => "53", "protocol" => "UDP" }],
            "rules" => map! { "dns" => list![map! { "matchPattern" => "*" }] },
        }],
    }
}

fn cilium_endpoint(plan: &Plan, rng: &mut Rng, me: &Workload, peer: &Workload) -> V {
    if peer.ns == me.ns {
        return map! { "matchLabels" => map! { "app" => &peer.name } };
    }
    let key = if rng.chance(50) {
        "k8s:io.kubernetes.pod.namespace"
    } else {
        "io.kubernetes.pod.namespace"
    };
    map! { "matchLabels" => map! { key => &plan.ns_of(peer).name, "app" => &peer.name } }
}

fn network_policy(plan: &Plan, i: usize, w: &Workload, seed: u64) -> V {
    let mut rng = Rng::for_item(seed, STREAM_POLICY_BODY, i);
    let ns = plan.ns_of(w);
    let metadata = |name: String| map! { "name" => name, "namespace" => &ns.name };
    if rng.chance(6) {
        let types = if rng.chance(50) {
            list!["Ingress"]
        } else {
            list!["Ingress", "Egress"]
        };
        return map! {
            "apiVersion" => "networking.k8s.io/v1",
            "kind" => "NetworkPolicy",
            "metadata" => metadata(format!("default-deny-{i}")),
            "spec" => map! { "podSelector" => V::empty_map(), "policyTypes" => types },
        };
    }
    let selector = match rng.below(10) {
        0..=5 => map! { "matchLabels" => map! { "app" => &w.name } },
        6 => map! { "matchLabels" => map! { "app" => &w.name, "version" => w.version } },
        _ => map! {
            "matchExpressions" => list![
                map! { "key" => "tier", "operator" => "In", "values" => list![w.app.tier] },
                map! { "key" => "version", "operator" => "NotIn", "values" => list!["canary"] },
            ],
        },
    };
    let (ingress, egress) = match rng.below(10) {
        0..=5 => (true, false),
        6..=7 => (true, true),
        _ => (false, true),
    };
    let mut spec = map! { "podSelector" => selector };
    if ingress {
        let mut rules = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let mut from = Vec::new();
            for _ in 0..1 + rng.below(2) {
                from.push(match rng.below(100) {
                    0..=44 => {
                        let peer = plan.same_ns_peer(&mut rng, w);
                        map! { "podSelector" => map! { "matchLabels" => map! { "app" => &peer.name } } }
                    }
                    45..=64 => {
                        let peer = plan.any_peer(&mut rng);
                        map! {
                            "namespaceSelector" => map! { "matchLabels" => map! { "kubernetes.io/metadata.name" => &plan.ns_of(peer).name } },
                            "podSelector" => map! { "matchLabels" => map! { "app" => &peer.name } },
                        }
                    }
                    65..=74 => {
                        let other = plan.ns_of(plan.any_peer(&mut rng));
                        map! { "namespaceSelector" => map! { "matchLabels" => map! { "team" => other.team, "env" => other.env } } }
                    }
                    75..=84 => {
                        let peer = plan.same_ns_peer(&mut rng, w);
                        map! {
                            "podSelector" => map! {
                                "matchExpressions" => list![map! { "key" => "tier", "operator" => "In", "values" => list![peer.app.tier] }],
                            },
                        }
                    }
                    _ => np_ip_block(&mut rng),
                });
            }
            let mut rule = map! { "from" => V::L(from) };
            if rng.chance(8) {
                rule.push("ports", list![map! { "protocol" => "TCP", "port" => 30000i64, "endPort" => 30000 + rng.range(1, 500) }]);
            } else if !rng.chance(5) {
                rule.push("ports", np_ports(&mut rng, w));
            }
            rules.push(rule);
        }
        spec.push("ingress", V::L(rules));
    }
    if egress {
        let mut rules = Vec::new();
        for _ in 0..1 + rng.below(2) {
            let rule = match rng.below(10) {
                0..=5 => {
                    let peer = if rng.chance(60) {
                        plan.same_ns_peer(&mut rng, w)
                    } else {
                        plan.any_peer(&mut rng)
                    };
                    let mut to = map! { "podSelector" => map! { "matchLabels" => map! { "app" => &peer.name } } };
                    if peer.ns != w.ns {
                        to = map! {
                            "namespaceSelector" => map! { "matchLabels" => map! { "kubernetes.io/metadata.name" => &plan.ns_of(peer).name } },
                            "podSelector" => map! { "matchLabels" => map! { "app" => &peer.name } },
                        };
                    }
                    map! { "to" => list![to], "ports" => np_ports(&mut rng, peer) }
                }
                6..=7 => {
                    let port = *rng.pick(&[443i64, 5432, 9092, 6379]);
                    map! { "to" => list![np_ip_block(&mut rng)], "ports" => list![map! { "protocol" => "TCP", "port" => port }] }
                }
                _ => map! {
                    "to" => list![map! {
                        "ipBlock" => map! {
                            "cidr" => "0.0.0.0/0",
                            "except" => list!["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"],
                        },
                    }],
                    "ports" => list![map! { "protocol" => "TCP", "port" => 443i64 }],
                },
            };
            rules.push(rule);
        }
        if rng.chance(60) {
            rules.push(map! {
                "to" => list![map! {
                    "namespaceSelector" => map! { "matchLabels" => map! { "kubernetes.io/metadata.name" => "kube-system" } },
                    "podSelector" => map! { "matchLabels" => map! { "k8s-app" => "kube-dns" } },
                }],
                "ports" => list![
                    map! { "protocol" => "UDP", "port" => 53i64 },
                    map! { "protocol" => "TCP", "port" => 53i64 },
                ],
            });
        }
        spec.push("egress", V::L(rules));
    }
    let types = match (ingress, egress) {
        (true, true) => Some(list!["Ingress", "Egress"]),
        (false, true) => Some(list!["Egress"]),
        // Ingress alone is the default; say it explicitly most of the time, as most trees do.
        _ if rng.chance(80) => Some(list!["Ingress"]),
        _ => None,
    };
    if let Some(types) = types {
        spec.push("policyTypes", types);
    }
    let what = match (ingress, egress) {
        (true, false) => "ingress",
        (false, true) => "egress",
        _ => "traffic",
    };
    map! {
        "apiVersion" => "networking.k8s.io/v1",
        "kind" => "NetworkPolicy",
        "metadata" => metadata(format!("allow-{}-{what}-{i}", w.name)),
        "spec" => spec,
    }
}

fn cilium_ingress(plan: &Plan, rng: &mut Rng, w: &Workload) -> V {
    let mut rules = Vec::new();
    for _ in 0..1 + rng.below(2) {
        let mut rule = match rng.below(10) {
            0..=6 => {
                let peer = if rng.chance(70) {
                    plan.same_ns_peer(rng, w)
                } else {
                    plan.any_peer(rng)
                };
                map! { "fromEndpoints" => list![cilium_endpoint(plan, rng, w, peer)] }
            }
            7 => map! { "fromEntities" => list![*rng.pick(&["host", "cluster", "remote-node"])] },
            _ => map! { "fromCIDRSet" => cilium_cidr_set(rng) },
        };
        rule.push("toPorts", cilium_to_ports(rng, w));
        rules.push(rule);
    }
    V::L(rules)
}

fn cilium_egress(plan: &Plan, rng: &mut Rng, w: &Workload) -> V {
    let mut rules = Vec::new();
    let mut dns = false;
    for _ in 0..1 + rng.below(3) {
        let rule = match rng.below(20) {
            0..=9 => {
                let peer = if rng.chance(60) {
                    plan.same_ns_peer(rng, w)
                } else {
                    plan.any_peer(rng)
                };
                map! { "toEndpoints" => list![cilium_endpoint(plan, rng, w, peer)], "toPorts" => cilium_to_ports(rng, peer) }
            }
            10..=11 => map! {
                "toEntities" => list!["kube-apiserver"],
                "toPorts" => list![map! { "ports" => list![
                    map! { "port" => "443", "protocol" => "TCP" },
                    map! { "port" => "6443", "protocol" => "TCP" },
                ] }],
            },
            12..=14 => {
                let port = *rng.pick(&["443", "5432", "9092"]);
                map! {
                    "toCIDRSet" => cilium_cidr_set(rng),
                    "toPorts" => list![map! { "ports" => list![map! { "port" => port, "protocol" => "TCP" }] }],
                }
            }
            15 => map! {
                "toEntities" => list!["world"],
                "toPorts" => list![map! { "ports" => list![map! { "port" => "443", "protocol" => "TCP" }] }],
            },
            _ => {
                dns = true;
                let mut fqdns = vec![map! { "matchName" => *rng.pick(FQDN_NAMES) }];
                if rng.chance(60) {
                    fqdns.push(map! { "matchPattern" => *rng.pick(FQDN_PATTERNS) });
                }
                map! {
                    "toFQDNs" => V::L(fqdns),
                    "toPorts" => list![map! { "ports" => list![map! { "port" => "443", "protocol" => "TCP" }] }],
                }
            }
        };
        rules.push(rule);
    }
    // toFQDNs only learns addresses from DNS answers the proxy sees: the DNS rule must come along.
    if dns || rng.chance(40) {
        rules.push(kube_dns_rule(rng.chance(70)));
    }
    V::L(rules)
}

fn cilium_policy(plan: &Plan, i: usize, w: &Workload, seed: u64) -> V {
    let mut rng = Rng::for_item(seed, STREAM_POLICY_BODY, i);
    let ns = plan.ns_of(w);
    let selector = if rng.chance(75) {
        map! { "matchLabels" => map! { "app" => &w.name } }
    } else {
        map! {
            "matchExpressions" => list![
                map! { "key" => "tier", "operator" => "In", "values" => list![w.app.tier] },
                map! { "key" => "app", "operator" => "Exists" },
            ],
        }
    };
    let (ingress, egress) = match rng.below(10) {
        0..=4 => (true, false),
        5..=7 => (true, true),
        _ => (false, true),
    };
    let mut spec = map! {
        "description" => format!("traffic rules for {} ({})", w.name, w.app.tier),
        "endpointSelector" => selector,
    };
    if ingress {
        spec.push("ingress", cilium_ingress(plan, &mut rng, w));
    }
    if egress {
        spec.push("egress", cilium_egress(plan, &mut rng, w));
    }
    map! {
        "apiVersion" => "cilium.io/v2",
        "kind" => "CiliumNetworkPolicy",
        "metadata" => map! {
            "name" => format!("cnp-{}-{i}", w.name),
            "namespace" => &ns.name,
            "labels" => map! { "app.kubernetes.io/managed-by" => "argocd", "team" => ns.team },
        },
        "spec" => spec,
    }
}

fn clusterwide_policy(plan: &Plan, nth: usize, i: usize, w: &Workload, seed: u64) -> V {
    let mut rng = Rng::for_item(seed, STREAM_POLICY_BODY, i);
    let ns = plan.ns_of(w);
    let (name, spec) = if nth == 0 {
        // The usual cluster baseline: everybody may resolve names, and nobody becomes default-deny.
        (
            format!("ccnp-allow-dns-{i}"),
            map! {
                "endpointSelector" => V::empty_map(),
                "enableDefaultDeny" => map! { "ingress" => false, "egress" => false },
                "egress" => list![kube_dns_rule(true)],
            },
        )
    } else if rng.chance(50) {
        (
            format!("ccnp-{}-{}-{i}", ns.name, w.name),
            map! {
                "endpointSelector" => map! {
                    "matchLabels" => map! { "k8s:io.kubernetes.pod.namespace" => &ns.name, "app" => &w.name },
                },
                "ingress" => list![map! { "fromEntities" => list!["cluster"], "toPorts" => cilium_to_ports(&mut rng, w) }],
            },
        )
    } else {
        (
            format!("ccnp-tier-{}-{i}", w.app.tier),
            map! {
                "endpointSelector" => map! {
                    "matchExpressions" => list![map! { "key" => "tier", "operator" => "In", "values" => list![w.app.tier] }],
                },
                "enableDefaultDeny" => map! { "egress" => false },
                "egress" => list![
                    map! {
                        "toEntities" => list!["kube-apiserver"],
                        "toPorts" => list![map! { "ports" => list![map! { "port" => "6443", "protocol" => "TCP" }] }],
                    },
                    kube_dns_rule(rng.chance(50)),
                ],
            },
        )
    };
    map! {
        "apiVersion" => "cilium.io/v2",
        "kind" => "CiliumClusterwideNetworkPolicy",
        "metadata" => map! { "name" => name },
        "spec" => spec,
    }
}

/// Writes files below the output directory and counts what it wrote.
struct Writer {
    root: PathBuf,
    seed: u64,
    stats: Stats,
    buf: String,
}

/// Objects per multi-document file.
const PER_FILE: usize = 50;

impl Writer {
    fn write_file(&mut self, rel: &Path, json: bool) -> Result<(), GenError> {
        let path = self.root.join(rel);
        let io = |source| GenError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = std::fs::File::create(&path).map_err(io)?;
        let mut out = std::io::BufWriter::with_capacity(256 * 1024, file);
        out.write_all(self.buf.as_bytes()).map_err(io)?;
        out.flush().map_err(io)?;
        self.stats.files += 1;
        self.stats.json_files += usize::from(json);
        self.stats.bytes += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    fn yaml_docs(&mut self, rel: &Path, docs: &[V]) -> Result<(), GenError> {
        self.buf.clear();
        self.buf.push_str(&format!(
            "# generated by gen-tree (seed {}); do not edit\n",
            self.seed
        ));
        for (n, doc) in docs.iter().enumerate() {
            if n > 0 || docs.len() > 1 {
                self.buf.push_str("---\n");
            }
            to_yaml(doc, &mut self.buf);
        }
        self.stats.documents += docs.len();
        self.write_file(rel, false)
    }

    fn json_doc(&mut self, rel: &Path, doc: &V) -> Result<(), GenError> {
        self.buf.clear();
        to_json(doc, &mut self.buf);
        self.stats.documents += 1;
        self.write_file(rel, true)
    }

    fn chunked(&mut self, dir: &Path, stem: &str, docs: &[V]) -> Result<(), GenError> {
        for (n, chunk) in docs.chunks(PER_FILE).enumerate() {
            self.yaml_docs(&dir.join(format!("{stem}-{n:03}.yaml")), chunk)?;
        }
        Ok(())
    }
}

fn count_policy(stats: &mut Stats, kind: PolicyKind) {
    match kind {
        PolicyKind::Network => stats.network_policies += 1,
        PolicyKind::Cilium => stats.cilium_policies += 1,
        PolicyKind::Clusterwide => stats.clusterwide_policies += 1,
    }
}

/// Generates the tree into `out` (created if missing) and returns what it wrote.
pub fn generate(cfg: &Config, out: &Path) -> Result<Stats, GenError> {
    let plan = plan(cfg)?;
    let mut w = Writer {
        root: out.to_path_buf(),
        seed: cfg.seed,
        stats: Stats::default(),
        buf: String::new(),
    };
    std::fs::create_dir_all(out).map_err(|source| GenError::Io {
        path: out.to_path_buf(),
        source,
    })?;

    for (ni, ns) in plan.namespaces.iter().enumerate() {
        let dir = PathBuf::from(&ns.name);
        let ns_obj = plan.namespace_object(ni, cfg.seed);
        if ni % 25 == 3 {
            w.json_doc(&dir.join("namespace.json"), &ns_obj)?;
        } else {
            w.yaml_docs(&dir.join("namespace.yaml"), &[ns_obj])?;
        }
        w.stats.namespaces += 1;

        // The first application namespace keeps its Services in one `List` object.
        let services_as_list = ni == 1;
        let mut docs = Vec::new();
        let mut listed = Vec::new();
        for &id in &ns.workloads {
            let wl = &plan.workloads[id];
            docs.push(plan.workload_object(wl));
            w.stats.workloads += 1;
            if wl.service {
                let svc = plan.service_object(wl);
                if services_as_list {
                    listed.push(svc)
                } else {
                    docs.push(svc)
                }
                w.stats.services += 1;
            }
        }
        w.chunked(&dir, "workloads", &docs)?;
        if !listed.is_empty() {
            let list = map! { "apiVersion" => "v1", "kind" => "List", "metadata" => map! { "resourceVersion" => "" }, "items" => V::L(listed) };
            w.yaml_docs(&dir.join("services-list.yaml"), &[list])?;
        }
        drop(docs);

        let mut docs = Vec::new();
        for (n, &(i, kind, anchor)) in plan.policies[ni].iter().enumerate() {
            let wl = &plan.workloads[anchor];
            let doc = match kind {
                PolicyKind::Cilium => cilium_policy(&plan, i, wl, cfg.seed),
                _ => network_policy(&plan, i, wl, cfg.seed),
            };
            count_policy(&mut w.stats, kind);
            // Some teams keep one policy per file, and a few write JSON.
            if n == 0 && ni % 25 == 5 {
                w.json_doc(&dir.join(format!("policy-{i}.json")), &doc)?;
            } else if i % 20 == 19 {
                w.yaml_docs(&dir.join(format!("policy-{i}.yaml")), &[doc])?;
            } else {
                docs.push(doc);
            }
        }
        w.chunked(&dir, "policies", &docs)?;
    }

    let mut docs = Vec::new();
    for (nth, &(i, anchor)) in plan.clusterwide.iter().enumerate() {
        docs.push(clusterwide_policy(
            &plan,
            nth,
            i,
            &plan.workloads[anchor],
            cfg.seed,
        ));
        count_policy(&mut w.stats, PolicyKind::Clusterwide);
    }
    w.chunked(Path::new("cluster-wide"), "policies", &docs)?;
    Ok(w.stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::tree_files;
    use saphyr_parser::{Event, Parser};
    use std::collections::{BTreeMap, BTreeSet};
    use std::net::IpAddr;

    /// A plain YAML tree, enough to look objects over.
    #[derive(Debug)]
    enum Y {
        S(String),
        M(Vec<(String, Y)>),
        L(Vec<Y>),
    }

    impl Y {
        fn get(&self, key: &str) -> Option<&Y> {
            match self {
                Y::M(e) => e.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }
        fn path(&self, keys: &[&str]) -> Option<&Y> {
            keys.iter().try_fold(self, |y, k| y.get(k))
        }
        fn str(&self) -> Option<&str> {
            match self {
                Y::S(s) => Some(s),
                _ => None,
            }
        }
        fn items(&self) -> &[Y] {
            match self {
                Y::L(l) => l,
                _ => &[],
            }
        }
        fn entries(&self) -> &[(String, Y)] {
            match self {
                Y::M(e) => e,
                _ => &[],
            }
        }
    }

    fn parse_docs(text: &str) -> Result<Vec<Y>, String> {
        let mut docs = Vec::new();
        let mut stack: Vec<(Y, Option<String>)> = Vec::new();
        for next in Parser::new_from_str(text) {
            let (event, span) = next.map_err(|e| e.to_string())?;
            let done = match event {
                Event::Scalar(v, ..) => Some(Y::S(v.into_owned())),
                Event::MappingStart(..) => {
                    stack.push((Y::M(Vec::new()), None));
                    None
                }
                Event::SequenceStart(..) => {
                    stack.push((Y::L(Vec::new()), None));
                    None
                }
                Event::MappingEnd | Event::SequenceEnd => stack.pop().map(|(y, _)| y),
                Event::Alias(_) => return Err(format!("unexpected alias at {span:?}")),
                _ => None,
            };
            let Some(node) = done else { continue };
            match stack.last_mut() {
                None => docs.push(node),
                Some((Y::L(items), _)) => items.push(node),
                Some((Y::M(entries), pending)) => match (pending.take(), node) {
                    (None, Y::S(k)) => {
                        if entries.iter().any(|(e, _)| *e == k) {
                            return Err(format!("duplicate key `{k}` at {span:?}"));
                        }
                        *pending = Some(k);
                    }
                    (None, _) => return Err(format!("non-scalar key at {span:?}")),
                    (Some(k), v) => entries.push((k, v)),
                },
                Some((Y::S(_), _)) => return Err("scalar on the stack".into()),
            }
        }
        Ok(docs)
    }

    /// A directory under the system temp dir, removed when the test ends.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let p =
                std::env::temp_dir().join(format!("gen-tree-test-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn small() -> Config {
        Config {
            policies: 50,
            workloads: 200,
            namespaces: Some(8),
            seed: 7,
        }
    }

    /// Every object of the tree (List items unpacked), with the file it came from.
    fn objects(dir: &Path) -> Vec<(PathBuf, Y)> {
        let mut out = Vec::new();
        for path in tree_files(dir).expect("walk") {
            let text = std::fs::read_to_string(&path).expect("read");
            let docs = parse_docs(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for doc in docs {
                if doc.get("kind").and_then(Y::str) == Some("List") {
                    for item in doc.get("items").map(Y::items).unwrap_or_default() {
                        out.push((path.clone(), clone_y(item)));
                    }
                } else {
                    out.push((path.clone(), doc));
                }
            }
        }
        out
    }

    fn clone_y(y: &Y) -> Y {
        match y {
            Y::S(s) => Y::S(s.clone()),
            Y::M(e) => Y::M(e.iter().map(|(k, v)| (k.clone(), clone_y(v))).collect()),
            Y::L(l) => Y::L(l.iter().map(clone_y).collect()),
        }
    }

    #[test]
    fn tree_is_well_formed_and_counted() {
        let dir = TempDir::new("wellformed");
        let stats = generate(&small(), &dir.0).expect("generate");
        let files = tree_files(&dir.0).expect("walk");
        assert_eq!(files.len(), stats.files);
        let bytes: u64 = files
            .iter()
            .map(|f| std::fs::metadata(f).expect("meta").len())
            .sum();
        assert_eq!(bytes, stats.bytes);
        assert!(stats.json_files >= 2, "some JSON files: {stats:?}");
        let lists = files
            .iter()
            .filter(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains("\nkind: List\n")))
            .count();
        assert_eq!(lists, 1, "exactly one List object");

        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for (path, obj) in objects(&dir.0) {
            let api = obj.get("apiVersion").and_then(Y::str).unwrap_or_default();
            let kind = obj.get("kind").and_then(Y::str).unwrap_or_default();
            let name = obj
                .path(&["metadata", "name"])
                .and_then(Y::str)
                .unwrap_or_default();
            assert!(
                !api.is_empty() && !kind.is_empty() && !name.is_empty(),
                "{}: object without apiVersion, kind or metadata.name: {obj:?}",
                path.display()
            );
            *kinds.entry(kind.to_string()).or_default() += 1;
        }
        let n = |k: &str| kinds.get(k).copied().unwrap_or(0);
        assert_eq!(n("Namespace"), stats.namespaces);
        assert_eq!(
            n("Deployment") + n("StatefulSet") + n("DaemonSet") + n("Pod"),
            stats.workloads
        );
        assert_eq!(n("Service"), stats.services);
        assert_eq!(n("NetworkPolicy"), stats.network_policies);
        assert_eq!(n("CiliumNetworkPolicy"), stats.cilium_policies);
        assert_eq!(
            n("CiliumClusterwideNetworkPolicy"),
            stats.clusterwide_policies
        );
        assert_eq!(
            (stats.namespaces, stats.workloads, stats.policies()),
            (8, 200, 50)
        );
        assert!(
            n("Deployment") > n("StatefulSet") && n("StatefulSet") > 0 && n("Pod") > 0,
            "{kinds:?}"
        );
    }

    #[test]
    fn same_arguments_give_same_bytes() {
        let (a, b) = (TempDir::new("det-a"), TempDir::new("det-b"));
        generate(&small(), &a.0).expect("generate a");
        generate(&small(), &b.0).expect("generate b");
        let fa = tree_files(&a.0).expect("walk a");
        let fb = tree_files(&b.0).expect("walk b");
        assert_eq!(fa.len(), fb.len());
        for (x, y) in fa.iter().zip(&fb) {
            assert_eq!(x.strip_prefix(&a.0).ok(), y.strip_prefix(&b.0).ok());
            assert_eq!(
                std::fs::read(x).expect("read"),
                std::fs::read(y).expect("read"),
                "{}",
                x.display()
            );
        }
    }

    #[test]
    fn too_few_workloads_is_refused() {
        let cfg = Config {
            policies: 1,
            workloads: 3,
            namespaces: Some(5),
            seed: 1,
        };
        assert!(matches!(plan(&cfg), Err(GenError::Config(_))));
    }

    /// A pod as policies see it: namespace, labels (plus Cilium's namespace label), port names.
    struct PodView {
        ns: String,
        labels: BTreeMap<String, String>,
        ports: BTreeSet<String>,
    }

    fn pods(objs: &[(PathBuf, Y)]) -> Vec<PodView> {
        let mut out = Vec::new();
        for (_, o) in objs {
            let kind = o.get("kind").and_then(Y::str).unwrap_or_default();
            let (meta, spec) = match kind {
                "Pod" => (o.get("metadata"), o.get("spec")),
                "Deployment" | "StatefulSet" | "DaemonSet" => (
                    o.path(&["spec", "template", "metadata"]),
                    o.path(&["spec", "template", "spec"]),
                ),
                _ => continue,
            };
            let ns = o
                .path(&["metadata", "namespace"])
                .and_then(Y::str)
                .unwrap_or_default()
                .to_string();
            let mut labels: BTreeMap<String, String> = meta
                .and_then(|m| m.get("labels"))
                .map(|l| {
                    l.entries()
                        .iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            labels.insert("io.kubernetes.pod.namespace".into(), ns.clone());
            let mut ports = BTreeSet::new();
            for c in spec
                .and_then(|s| s.get("containers"))
                .map(Y::items)
                .unwrap_or_default()
            {
                for p in c.get("ports").map(Y::items).unwrap_or_default() {
                    if let Some(name) = p.get("name").and_then(Y::str) {
                        ports.insert(name.to_string());
                    }
                }
            }
            out.push(PodView { ns, labels, ports });
        }
        out
    }

    fn selects(sel: &Y, labels: &BTreeMap<String, String>) -> bool {
        let plain = |k: &str| k.strip_prefix("k8s:").unwrap_or(k).to_string();
        let labels_ok = sel
            .get("matchLabels")
            .map(Y::entries)
            .unwrap_or_default()
            .iter()
            .all(|(k, v)| labels.get(&plain(k)).map(String::as_str) == v.str());
        let exprs_ok = sel
            .get("matchExpressions")
            .map(Y::items)
            .unwrap_or_default()
            .iter()
            .all(|e| {
                let key = plain(e.get("key").and_then(Y::str).unwrap_or_default());
                let values: Vec<&str> = e
                    .get("values")
                    .map(Y::items)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(Y::str)
                    .collect();
                let have = labels.get(&key).map(String::as_str);
                match e.get("operator").and_then(Y::str).unwrap_or_default() {
                    "In" => have.is_some_and(|h| values.contains(&h)),
                    "NotIn" => have.is_none_or(|h| !values.contains(&h)),
                    "Exists" => have.is_some(),
                    "DoesNotExist" => have.is_none(),
                    op => panic!("unknown operator {op}"),
                }
            });
        labels_ok && exprs_ok
    }

    /// `addr/len` with no host bits, as (address bits, length, is IPv6).
    fn parse_cidr(s: &str) -> (u128, u32, bool) {
        let (addr, len) = s
            .split_once('/')
            .unwrap_or_else(|| panic!("no prefix length in {s}"));
        let len: u32 = len.parse().unwrap_or_else(|_| panic!("bad length in {s}"));
        let (bits, width, v6) = match addr
            .parse::<IpAddr>()
            .unwrap_or_else(|_| panic!("bad address in {s}"))
        {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 32, false),
            IpAddr::V6(a) => (u128::from(a), 128, true),
        };
        assert!(len <= width, "{s}: prefix too long");
        let host = if len == width {
            0
        } else {
            (1u128 << (width - len)) - 1
        };
        assert_eq!(bits & host, 0, "{s} has host bits");
        (bits, len, v6)
    }

    fn check_cidrs(y: &Y) {
        if let Some(cidr) = y.get("cidr").and_then(Y::str) {
            let (bits, len, v6) = parse_cidr(cidr);
            for e in y.get("except").map(Y::items).unwrap_or_default() {
                let e = e.str().expect("except is a string");
                let (eb, elen, ev6) = parse_cidr(e);
                let width = if v6 { 128 } else { 32 };
                assert!(
                    ev6 == v6 && elen > len && (eb >> (width - len)) == (bits >> (width - len)),
                    "{e} is not strictly inside {cidr}"
                );
            }
        }
        for (_, v) in y.entries() {
            check_cidrs(v);
        }
        for v in y.items() {
            check_cidrs(v);
        }
    }

    fn check_ports(y: &Y) {
        for (k, v) in y.entries() {
            if matches!(
                k.as_str(),
                "port" | "endPort" | "containerPort" | "targetPort"
            ) {
                if let Some(n) = v.str().and_then(|s| s.parse::<u32>().ok()) {
                    assert!((1..=65535).contains(&n), "port {n} out of range");
                }
            }
            check_ports(v);
        }
        for v in y.items() {
            check_ports(v);
        }
    }

    /// Cilium `toPorts` entries: L7 only on TCP, and `world` or a /0 never without ports.
    fn check_cilium_rules(rules: &[Y]) {
        for rule in rules {
            for tp in rule.get("toPorts").map(Y::items).unwrap_or_default() {
                if tp.path(&["rules", "http"]).is_some() {
                    for p in tp.get("ports").map(Y::items).unwrap_or_default() {
                        assert_eq!(
                            p.get("protocol").and_then(Y::str),
                            Some("TCP"),
                            "HTTP rules on a non-TCP port"
                        );
                    }
                }
            }
            let wide = rule
                .get("toEntities")
                .map(Y::items)
                .unwrap_or_default()
                .iter()
                .any(|e| matches!(e.str(), Some("world" | "all")));
            assert!(
                !wide || rule.get("toPorts").is_some(),
                "egress to world on all ports"
            );
        }
    }

    #[test]
    fn policies_are_valid_by_construction() {
        let dir = TempDir::new("valid");
        let cfg = Config {
            policies: 400,
            workloads: 600,
            namespaces: Some(12),
            seed: 3,
        };
        generate(&cfg, &dir.0).expect("generate");
        let objs = objects(&dir.0);
        let pods = pods(&objs);
        let mut names = BTreeSet::new();
        for (path, o) in &objs {
            check_cidrs(o);
            check_ports(o);
            let kind = o.get("kind").and_then(Y::str).unwrap_or_default();
            let ns = o.path(&["metadata", "namespace"]).and_then(Y::str);
            let name = o
                .path(&["metadata", "name"])
                .and_then(Y::str)
                .unwrap_or_default();
            assert!(
                names.insert((kind.to_string(), ns.map(str::to_string), name.to_string())),
                "duplicate {kind} {name}"
            );
            // Namespaced policies select in their namespace; clusterwide ones anywhere.
            let (selector, clusterwide) = match kind {
                "NetworkPolicy" => (o.path(&["spec", "podSelector"]), false),
                "CiliumNetworkPolicy" => (o.path(&["spec", "endpointSelector"]), false),
                "CiliumClusterwideNetworkPolicy" => (o.path(&["spec", "endpointSelector"]), true),
                _ => continue,
            };
            let in_scope = |p: &PodView| clusterwide || Some(p.ns.as_str()) == ns;
            let selector =
                selector.unwrap_or_else(|| panic!("{}: {name} has no selector", path.display()));
            let selected: Vec<&PodView> = pods
                .iter()
                .filter(|p| in_scope(p) && selects(selector, &p.labels))
                .collect();
            assert!(
                !selected.is_empty(),
                "{}: {kind} {name} selects no workload",
                path.display()
            );
            if kind == "NetworkPolicy" {
                for rule in o
                    .path(&["spec", "ingress"])
                    .map(Y::items)
                    .unwrap_or_default()
                {
                    for p in rule.get("ports").map(Y::items).unwrap_or_default() {
                        let port = p.get("port").and_then(Y::str).unwrap_or_default();
                        if port.parse::<u16>().is_err() {
                            assert!(
                                selected.iter().any(|s| s.ports.contains(port)),
                                "{name}: named port {port} on no selected pod"
                            );
                        }
                    }
                }
                for rule in o
                    .path(&["spec", "egress"])
                    .map(Y::items)
                    .unwrap_or_default()
                {
                    let open = rule
                        .get("to")
                        .map(Y::items)
                        .unwrap_or_default()
                        .iter()
                        .any(|t| {
                            t.path(&["ipBlock", "cidr"]).and_then(Y::str) == Some("0.0.0.0/0")
                        });
                    assert!(
                        !open || rule.get("ports").is_some(),
                        "{name}: egress to 0.0.0.0/0 on all ports"
                    );
                }
            } else {
                check_cilium_rules(
                    o.path(&["spec", "ingress"])
                        .map(Y::items)
                        .unwrap_or_default(),
                );
                check_cilium_rules(
                    o.path(&["spec", "egress"])
                        .map(Y::items)
                        .unwrap_or_default(),
                );
            }
        }
    }
}
