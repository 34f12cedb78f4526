//! Shared by the datapath tests: a private bpffs per test, a loaded datapath, packet builders
//! and BPF_PROG_TEST_RUN.

// mount(2)/umount(2) of the per-test bpffs.
#![allow(unsafe_code)]
#![allow(dead_code)]

pub mod flows;

use aya::programs::{TestRun, TestRunOptions};
use compiler::bundle::{Bundle, IpcacheEntry, Options};
use compiler::identity::Identity;
use compiler::lower::{compile, Compiled};
use enforcer::datapath::programs;
use enforcer::{Datapath, GenerationSpec, LoadOptions};
use std::ffi::CString;
use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

pub const TC_ACT_OK: u32 = 0;
pub const TC_ACT_SHOT: u32 = 2;
/// What `plc_from_ep` returns when it hands a packet straight to another local endpoint.
pub const TC_ACT_REDIRECT: u32 = 7;

/// The node's own address and another node's, as the agent would add them to the ipcache.
pub const HOST_IP: &str = "10.0.0.1";
pub const REMOTE_NODE_IP: &str = "172.16.0.1";
/// A prefix the agent gives the reserved identity `world` (2) itself, as Cilium does for
/// 0.0.0.0/0: the one way a packet's peer is `world` rather than `world-ipv4`/`world-ipv6`.
pub const WORLD_PREFIX: &str = "203.0.113.0/24";
pub const WORLD_IP: &str = "203.0.113.7";

/// A bpffs mounted on a fresh directory, unmounted and removed on drop (also when the test
/// panics), so that no pin outlives its test.
pub struct Bpffs {
    path: PathBuf,
}

impl Bpffs {
    pub fn new(tag: &str) -> Bpffs {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "plc-bpffs-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create the bpffs mount point");
        let target = CString::new(path.as_os_str().as_bytes()).expect("path");
        let fstype = CString::new("bpf").expect("cstr");
        // SAFETY: valid C strings; no data argument.
        let r = unsafe {
            libc::mount(
                fstype.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            let _ = std::fs::remove_dir(&path);
            panic!(
                "cannot mount a bpffs at {} ({e}): the datapath tests need root",
                path.display()
            );
        }
        Bpffs { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(&self.path) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        if let Ok(target) = CString::new(self.path.as_os_str().as_bytes()) {
            // SAFETY: valid C string.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// A datapath loaded into its own bpffs. Field order: the datapath drops (closing its maps)
/// before the bpffs is unmounted.
pub struct Node {
    pub dp: Datapath,
    pub fs: Bpffs,
}

impl Node {
    pub fn load(tag: &str) -> Node {
        let fs = Bpffs::new(tag);
        let mut opts = LoadOptions::new(fs.path().join("plc"));
        // Small tables: many tests load at once.
        opts.ct_max_entries = Some(16384);
        opts.frag_max_entries = Some(1024);
        let dp = match Datapath::load(&opts) {
            Ok(dp) => dp,
            // The error carries the verifier log.
            Err(e) => {
                let mut msg = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg.push_str(&format!("\n  caused by: {s}"));
                    src = s.source();
                }
                panic!("{msg}")
            }
        };
        Node { dp, fs }
    }

    /// Writes `bundle` as the next generation: every endpoint local on loopback (where
    /// BPF_PROG_TEST_RUN runs packets), the node and a remote node in the ipcache.
    pub fn write(&mut self, bundle: &Bundle) -> enforcer::Swap {
        let spec = local_spec(bundle);
        self.dp.write_generation(&spec).expect("write generation")
    }

    pub fn write_spec(&mut self, spec: &GenerationSpec<'_>) -> enforcer::Swap {
        self.dp.write_generation(spec).expect("write generation")
    }

    /// Runs a program on a packet: (TC verdict, skb->mark afterwards).
    pub fn run(&self, program: &'static str, packet: &[u8]) -> (u32, u32) {
        self.run_on(program, packet, 0)
    }

    /// Like [`Node::run`] with `skb->ifindex` taken from the interface `ifindex` (0 or 1:
    /// loopback; BPF_PROG_TEST_RUN needs an interface that exists).
    pub fn run_on(&self, program: &'static str, packet: &[u8], ifindex: u32) -> (u32, u32) {
        run_on(&self.dp, program, packet, ifindex)
    }

    /// `plc_from_ep`: the packet leaves its source endpoint (that endpoint's egress).
    pub fn egress(&self, packet: &[u8]) -> (u32, u32) {
        self.run(programs::FROM_EP, packet)
    }

    /// `plc_to_ep`: the packet enters its destination endpoint (that endpoint's ingress).
    pub fn ingress(&self, packet: &[u8]) -> (u32, u32) {
        self.run(programs::TO_EP, packet)
    }
}

/// Runs a program of `dp` on a packet with BPF_PROG_TEST_RUN: (TC verdict, skb->mark after).
pub fn run_on(dp: &Datapath, program: &'static str, packet: &[u8], ifindex: u32) -> (u32, u32) {
    try_run_on(dp, program, packet, ifindex).unwrap_or_else(|e| {
        panic!(
            "BPF_PROG_TEST_RUN of {program} on {} bytes {packet:02x?}: {e:?}",
            packet.len()
        )
    })
}

/// Like [`run_on`], `None` when the kernel refuses to build the skb: BPF_PROG_TEST_RUN
/// rejects a frame whose ethertype announces an IP header the frame does not hold in full
/// (shorter than 14 + 20 bytes for IPv4, 14 + 40 for IPv6). Such frames are dropped by the
/// programs with `l3-truncated`, but only traffic can show it.
pub fn try_run_on(
    dp: &Datapath,
    program: &'static str,
    packet: &[u8],
    ifindex: u32,
) -> Result<(u32, u32), aya::programs::ProgramError> {
    let prog = dp.program(program).expect("program");
    let mut ctx_in = [0u8; SK_BUFF_SIZE];
    ctx_in[SK_BUFF_IFINDEX..SK_BUFF_IFINDEX + 4].copy_from_slice(&ifindex.to_ne_bytes());
    let mut ctx_out = [0u8; SK_BUFF_SIZE];
    let opts = TestRunOptions {
        data_in: Some(packet),
        ctx_in: Some(&ctx_in),
        ctx_out: Some(&mut ctx_out),
        ..TestRunOptions::new()
    };
    let r = prog.test_run(opts)?;
    let mark = u32::from_ne_bytes(
        ctx_out[SK_BUFF_MARK..SK_BUFF_MARK + 4]
            .try_into()
            .expect("4 bytes"),
    );
    Ok((r.return_value, mark))
}

/// Whether BPF_PROG_TEST_RUN takes this frame (see [`try_run_on`]).
pub fn test_run_takes(p: &[u8]) -> bool {
    let min = match p.get(12..14) {
        Some([0x08, 0x00]) => ETH_HLEN + 20,
        Some([0x86, 0xdd]) => ETH_HLEN + 40,
        _ => MIN_FRAME,
    };
    p.len() >= min
}

/// `struct __sk_buff`: its size and the offsets of `mark` and `ifindex`.
const SK_BUFF_SIZE: usize = 192;
const SK_BUFF_MARK: usize = 8;
const SK_BUFF_IFINDEX: usize = 40;

/// Loopback's interface index: BPF_PROG_TEST_RUN gives packets this `skb->ifindex`.
pub const LO: u32 = 1;

/// A spec with every endpoint of `bundle` bound to loopback and [`node_ipcache`].
pub fn local_spec(bundle: &Bundle) -> GenerationSpec<'_> {
    let mut spec = GenerationSpec::new(bundle);
    spec.extra_ipcache = node_ipcache();
    for e in &bundle.endpoints {
        for ip in &e.ips {
            spec.ifindex.insert(*ip, LO);
        }
    }
    spec
}

pub fn node_ipcache() -> Vec<IpcacheEntry> {
    vec![
        IpcacheEntry {
            prefix: format!("{HOST_IP}/32").parse().expect("prefix"),
            identity: Identity::HOST,
        },
        IpcacheEntry {
            prefix: format!("{REMOTE_NODE_IP}/32").parse().expect("prefix"),
            identity: Identity::REMOTE_NODE,
        },
        IpcacheEntry {
            prefix: WORLD_PREFIX.parse().expect("prefix"),
            identity: Identity::WORLD,
        },
    ]
}

/// Compiles a YAML tree; panics on any error diagnostic.
pub fn compile_tree(yaml: &str, options: Options) -> Compiled {
    let checked = policy_lang::check_sources(vec![("tree.yaml".into(), yaml.to_owned())]);
    let errors: Vec<_> = checked
        .diagnostics
        .iter()
        .filter(|d| d.severity == policy_lang::Severity::Error)
        .collect();
    assert!(errors.is_empty(), "tree has errors: {errors:#?}");
    compile(&checked.tree, &checked.sources, None, options)
}

pub fn shop() -> Compiled {
    compile_tree(include_str!("../fixtures/shop.yaml"), Options::default())
}

/// What a test packet carries above IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    Sctp {
        sport: u16,
        dport: u16,
    },
    /// ICMP or ICMPv6 by the packet's family.
    Icmp {
        kind: u8,
        id: u16,
    },
    /// Any other protocol, no header.
    Raw {
        proto: u8,
    },
}

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const FIN: u8 = 0x01;
pub const RST: u8 = 0x04;

impl L4 {
    pub fn proto(&self, v6: bool) -> u8 {
        match self {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } => 17,
            L4::Sctp { .. } => 132,
            L4::Icmp { .. } => {
                if v6 {
                    58
                } else {
                    1
                }
            }
            L4::Raw { proto } => *proto,
        }
    }

    pub fn header(&self) -> Vec<u8> {
        match *self {
            L4::Tcp {
                sport,
                dport,
                flags,
            } => {
                let mut h = vec![0u8; 20];
                h[0..2].copy_from_slice(&sport.to_be_bytes());
                h[2..4].copy_from_slice(&dport.to_be_bytes());
                h[4..8].copy_from_slice(&1u32.to_be_bytes());
                h[12] = 5 << 4;
                h[13] = flags;
                h[14..16].copy_from_slice(&64240u16.to_be_bytes());
                h
            }
            L4::Udp { sport, dport } => {
                let mut h = vec![0u8; 8];
                h[0..2].copy_from_slice(&sport.to_be_bytes());
                h[2..4].copy_from_slice(&dport.to_be_bytes());
                h[4..6].copy_from_slice(&8u16.to_be_bytes());
                h
            }
            L4::Sctp { sport, dport } => {
                let mut h = vec![0u8; 12];
                h[0..2].copy_from_slice(&sport.to_be_bytes());
                h[2..4].copy_from_slice(&dport.to_be_bytes());
                h
            }
            L4::Icmp { kind, id } => {
                let mut h = vec![0u8; 8];
                h[0] = kind;
                h[4..6].copy_from_slice(&id.to_be_bytes());
                h[6..8].copy_from_slice(&1u16.to_be_bytes());
                h
            }
            L4::Raw { .. } => Vec::new(),
        }
    }
}

pub const ETH_HLEN: usize = 14;

/// The shortest frame BPF_PROG_TEST_RUN accepts for a classifier (it refuses a bare
/// Ethernet header with EINVAL).
pub const MIN_FRAME: usize = ETH_HLEN + 1;

fn eth(ethertype: u16) -> Vec<u8> {
    let mut e = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];
    e.extend_from_slice(&ethertype.to_be_bytes());
    e
}

/// An Ethernet frame with an IPv4 or IPv6 packet (by the addresses' family) carrying `l4`
/// and `payload` bytes.
pub fn packet(src: IpAddr, dst: IpAddr, l4: L4, payload: usize) -> Vec<u8> {
    let mut body = l4.header();
    body.extend((0..payload).map(|i| i as u8));
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut p = eth(0x0800);
            p.extend(ipv4_header(
                s.octets(),
                d.octets(),
                l4.proto(false),
                &[],
                body.len(),
            ));
            p.extend(body);
            p
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut p = eth(0x86dd);
            p.extend(ipv6_header(
                s.octets(),
                d.octets(),
                l4.proto(true),
                body.len(),
            ));
            p.extend(body);
            p
        }
        _ => panic!("mixed families"),
    }
}

/// An IPv4 header with `options` (padded to 4 bytes) for a body of `body` bytes.
pub fn ipv4_header(s: [u8; 4], d: [u8; 4], proto: u8, options: &[u8], body: usize) -> Vec<u8> {
    let mut opts = options.to_vec();
    while !opts.len().is_multiple_of(4) {
        opts.push(0);
    }
    let hlen = 20 + opts.len();
    let mut h = vec![0u8; 20];
    h[0] = 0x40 | (hlen / 4) as u8;
    h[2..4].copy_from_slice(&((hlen + body) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    h[6] = 0x40; // DF
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&s);
    h[16..20].copy_from_slice(&d);
    h.extend(opts);
    h
}

pub fn ipv6_header(s: [u8; 16], d: [u8; 16], next: u8, payload: usize) -> Vec<u8> {
    let mut h = vec![0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(payload as u16).to_be_bytes());
    h[6] = next;
    h[7] = 64;
    h[8..24].copy_from_slice(&s);
    h[24..40].copy_from_slice(&d);
    h
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

pub fn pair() -> Compiled {
    compile_tree(include_str!("../fixtures/pair.yaml"), Options::default())
}

pub fn pair_v2() -> Compiled {
    compile_tree(include_str!("../fixtures/pair-v2.yaml"), Options::default())
}

/// An IPv4 fragment: `offset` in 8-byte units, `more` = MF; `body` is what follows the IP
/// header (the L4 header only in a first fragment).
pub fn ipv4_fragment(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    id: u16,
    offset: u16,
    more: bool,
    body: &[u8],
) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src, dst) else {
        panic!("IPv4 only")
    };
    let mut p = eth(0x0800);
    let mut h = ipv4_header(s.octets(), d.octets(), proto, &[], body.len());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    let frag = offset | if more { 0x2000 } else { 0 };
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    p.extend(h);
    p.extend_from_slice(body);
    p
}

/// An IPv6 packet whose extension headers are `ext` (each `(type, bytes)`, bytes starting
/// with the next-header byte, which this fills in) followed by `proto` and `body`.
pub fn ipv6_with_ext(
    src: IpAddr,
    dst: IpAddr,
    ext: &[(u8, Vec<u8>)],
    proto: u8,
    body: &[u8],
) -> Vec<u8> {
    let (IpAddr::V6(s), IpAddr::V6(d)) = (src, dst) else {
        panic!("IPv6 only")
    };
    let first = ext.first().map(|(t, _)| *t).unwrap_or(proto);
    let mut payload = Vec::new();
    for (i, (_, bytes)) in ext.iter().enumerate() {
        let mut b = bytes.clone();
        b[0] = ext.get(i + 1).map(|(t, _)| *t).unwrap_or(proto);
        payload.extend(b);
    }
    payload.extend_from_slice(body);
    let mut p = eth(0x86dd);
    p.extend(ipv6_header(s.octets(), d.octets(), first, payload.len()));
    p.extend(payload);
    p
}

/// An 8-byte IPv6 options header (hop-by-hop or destination options): PadN.
pub fn ipv6_opts() -> Vec<u8> {
    vec![0, 0, 1, 4, 0, 0, 0, 0]
}

/// An IPv6 fragment header.
pub fn ipv6_frag(offset: u16, more: bool, id: u32) -> Vec<u8> {
    let mut b = vec![0u8; 8];
    let fo = (offset << 3) | u16::from(more);
    b[2..4].copy_from_slice(&fo.to_be_bytes());
    b[4..8].copy_from_slice(&id.to_be_bytes());
    b
}

pub fn arp() -> Vec<u8> {
    let mut p = eth(0x0806);
    p.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    p.extend_from_slice(&[0u8; 20]);
    p
}

pub fn with_ethertype(mut p: Vec<u8>, ethertype: u16) -> Vec<u8> {
    p[12..14].copy_from_slice(&ethertype.to_be_bytes());
    p
}

/// Moves the calling thread into a fresh network namespace of its own (it and the processes
/// it starts see only that namespace; the rest of the process and the host are untouched).
pub fn private_netns() {
    // SAFETY: unshare of the network namespace affects only the calling thread.
    let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        r,
        0,
        "unshare(CLONE_NEWNET): {}",
        std::io::Error::last_os_error()
    );
}

/// Runs `ip` with `args` in the calling thread's network namespace.
pub fn ip_cmd(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn ifindex(name: &str) -> u32 {
    let c = CString::new(name).expect("name");
    // SAFETY: valid C string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert_ne!(i, 0, "no interface {name}");
    i
}

/// Sends one Ethernet frame out of interface `name` with a packet socket. A frame that a tc
/// egress program drops fails with ENOBUFS (the device refused it).
pub fn send_frame(name: &str, frame: &[u8]) -> std::io::Result<()> {
    // SAFETY: plain socket calls on a descriptor this function owns and closes; the address
    // is a zeroed sockaddr_ll with its fields set.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        assert!(
            fd >= 0,
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = ifindex(name) as i32;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&frame[..6]);
        let n = libc::sendto(
            fd,
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&addr as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as u32,
        );
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if n == frame.len() as isize {
            Ok(())
        } else {
            Err(err)
        }
    }
}
