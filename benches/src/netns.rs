//! Named network namespaces the benches create and delete (never the root one), threads
//! entering one (`setns`), commands run inside one, private bpffs mounts and temp dirs; every
//! one a guard that undoes itself on drop.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The prefix of every namespace, mount and temp dir the benches create: `plcb-PID-…`. A run
/// stopped by SIGKILL leaves them behind; `ip netns list | grep ^plcb-` finds them.
pub const PREFIX: &str = "plcb";

/// A command's failure with what it printed.
pub fn cmd_error(what: &str, out: &std::process::Output) -> String {
    let mut msg = format!("`{what}` failed ({})", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr = stderr.trim();
    if !stderr.is_empty() {
        // A restore that fails prints the offending line; keep the message short.
        let short: String = stderr.chars().take(600).collect();
        msg.push_str(&format!(": {short}"));
    }
    msg
}

/// Runs `program args…` to completion (stdin from `input` if given); an error carries stderr.
pub fn run(program: &str, args: &[&str], input: Option<&[u8]>) -> Result<(), String> {
    let what = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{what}`: {e}"))?;
    if let Some(bytes) = input {
        use std::io::Write;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(bytes)
                .map_err(|e| format!("`{what}`: cannot write its input: {e}"))?;
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("`{what}`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(cmd_error(&what, &out))
    }
}

/// Runs a command and returns its stdout.
pub fn output(program: &str, args: &[&str]) -> Result<String, String> {
    let what = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `{what}`: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(cmd_error(&what, &out))
    }
}

/// A named network namespace (`/run/netns/NAME`), deleted on drop: normal end, error, panic,
/// and the Ctrl-C path (the bench turns SIGINT into an error, so destructors run).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `plcb-PID-tag`; fails if the name exists (it is never reused or adopted).
    pub fn create(tag: &str) -> Result<Netns, String> {
        let name = format!("{PREFIX}-{}-{tag}", std::process::id());
        run("ip", &["netns", "add", &name], None)?;
        let ns = Netns { name };
        // Loopback up, IPv6 off: no router solicitations or MLD reports in the measurement.
        ns.ip(&["link", "set", "lo", "up"])?;
        ns.sysctl(&[
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME args…`
    /// `/run/netns/NAME`, what `CNI_NETNS` and `EndpointAdd` call a pod's namespace.
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    pub fn ip(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run("ip", &all, None)
    }

    /// `ip netns exec NAME program args…`, with `input` on its stdin.
    pub fn exec(&self, program: &str, args: &[&str], input: Option<&[u8]>) -> Result<(), String> {
        let mut all = vec!["netns", "exec", self.name.as_str(), program];
        all.extend_from_slice(args);
        run("ip", &all, input)
    }

    /// `ip netns exec NAME program args…`, returning stdout.
    pub fn exec_output(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["netns", "exec", self.name.as_str(), program];
        all.extend_from_slice(args);
        output("ip", &all)
    }

    /// Sets `key=value` sysctls inside the namespace.
    pub fn sysctl(&self, settings: &[&str]) -> Result<(), String> {
        let mut args = vec!["-q", "-w"];
        args.extend_from_slice(settings);
        self.exec("sysctl", &args, None)
    }

    /// The interface index of `ifname` inside the namespace.
    pub fn ifindex(&self, ifname: &str) -> Result<u32, String> {
        let out = output(
            "ip",
            &["-n", &self.name, "-o", "link", "show", "dev", ifname],
        )?;
        out.split(':')
            .next()
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| format!("no index for `{ifname}` in `{}`: {out}", self.name))
    }

    /// Moves the calling thread into this namespace. Only that thread moves: sockets it
    /// creates from then on belong to the namespace, and the rest of the process stays where
    /// it was. Call it on threads made for the purpose ([`in_netns`], the load generator).
    pub fn enter(&self) -> Result<(), String> {
        let path = Path::new("/run/netns").join(&self.name);
        let file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        setns_net(&file).map_err(|e| format!("setns into `{}`: {e}", self.name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run("ip", &["netns", "del", &self.name], None) {
            eprintln!("warning: cannot delete network namespace: {e}");
        }
    }
}

#[allow(unsafe_code)] // setns(2) has no std API
fn setns_net(file: &File) -> std::io::Result<()> {
    // SAFETY: `file` is an open namespace file that outlives the call; setns only changes the
    // calling thread's network namespace and touches no memory of ours.
    let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Runs `f` on a fresh thread that first enters `ns`, and returns its result (a panic in `f`
/// becomes an error). The caller's thread never changes namespace.
pub fn in_netns<T: Send>(
    ns: &Netns,
    f: impl FnOnce() -> Result<T, String> + Send,
) -> Result<T, String> {
    std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter()?;
            f()
        })
        .join()
        .map_err(|_| format!("a thread inside `{}` panicked", ns.name()))?
    })
}

/// A bpffs mounted on a fresh directory under the temp dir, for this run's pins only;
/// unmounted and removed on drop (as the enforcer tests do).
pub struct Bpffs {
    path: PathBuf,
}

impl Bpffs {
    /// A bpffs at `plcb-PID-bpffs-TAG` under the temp dir.
    pub fn mount(tag: &str) -> Result<Bpffs, String> {
        let path =
            std::env::temp_dir().join(format!("{PREFIX}-{}-bpffs-{tag}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Err(e) = mount_bpffs(&path) {
            let _ = std::fs::remove_dir(&path);
            return Err(format!(
                "cannot mount a bpffs at {} ({e}): the benches need root",
                path.display()
            ));
        }
        Ok(Bpffs { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        // Pins of every run's datapath live in subdirectories; unpinning is unlinking.
        let _ = remove_pins(&self.path);
        if let Err(e) = umount(&self.path) {
            eprintln!("warning: cannot unmount {}: {e}", self.path.display());
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

fn remove_pins(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            remove_pins(&path)?;
            std::fs::remove_dir(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

fn c_path(path: &Path) -> std::io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
}

#[allow(unsafe_code)] // mount(2) has no std API
fn mount_bpffs(path: &Path) -> std::io::Result<()> {
    let target = c_path(path)?;
    let fstype = c"bpf";
    // SAFETY: valid NUL-terminated strings that outlive the call; no data argument.
    let r = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[allow(unsafe_code)] // umount2(2) has no std API
fn umount(path: &Path) -> std::io::Result<()> {
    let target = c_path(path)?;
    // SAFETY: a valid NUL-terminated string that outlives the call.
    let r = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A directory under the temp dir, removed with everything in it on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn create(tag: &str) -> Result<TempDir, String> {
        let path = std::env::temp_dir().join(format!("{PREFIX}-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(TempDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("warning: cannot remove `{}`: {e}", self.path.display());
            }
        }
    }
}

/// Calico-like wiring of a pod (nothing ever appears in the root namespace). The node end
/// goes when either namespace is deleted.
pub fn wire_pod(
    node: &Netns,
    pod: &Netns,
    host_if: &str,
    ip: std::net::Ipv4Addr,
) -> Result<(), String> {
    let addr = format!("{ip}/32");
    node.ip(&[
        "link",
        "add",
        host_if,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        pod.name(),
    ])?;
    pod.ip(&["addr", "add", &addr, "dev", "eth0"])?;
    pod.ip(&["link", "set", "eth0", "up"])?;
    pod.ip(&["route", "add", "default", "dev", "eth0", "scope", "link"])?;
    node.sysctl(&[
        &format!("net.ipv4.conf.{host_if}.proxy_arp=1"),
        &format!("net.ipv4.neigh.{host_if}.proxy_delay=0"),
    ])?;
    node.ip(&["link", "set", host_if, "up"])?;
    node.ip(&["route", "add", &addr, "dev", host_if])?;
    Ok(())
}
