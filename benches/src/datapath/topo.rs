//! One Calico-like node of the datapath bench: a node namespace routing between a client and
//! a server pod namespace over veth pairs, the sockets the load runs on, and the checks that
//! the probed flows pass (and an unlisted port does not, where a policy is installed).

use super::policy::{
    CLIENT_IF, CLIENT_IP, DENIED_UDP_PORT, SERVER_IF, SERVER_IP, TCP_PORT, UDP_PORT,
};
use crate::netns::{in_netns, wire_pod, Netns};
use std::io::ErrorKind;
use std::net::{SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// A node and its two pods. Pods have a /32 address and an on-link default route; the node
/// has a host route per pod, `proxy_arp` on the host-side veths (it answers the pods' ARP for
/// any address it routes elsewhere) and forwards: pod -> node namespace -> pod, as Calico
/// wires it (Calico points the default route at 169.254.1.1, answered the same way).
/// Field order is drop order: the node goes first, taking the veths with it.
pub struct World {
    pub node: Netns,
    pub client: Netns,
    pub server: Netns,
}

impl World {
    /// Three fresh namespaces `plcb-PID-{tag}n`, `…{tag}c`, `…{tag}s`, wired.
    pub fn create(tag: &str) -> Result<World, String> {
        let world = World {
            node: Netns::create(&format!("{tag}n"))?,
            client: Netns::create(&format!("{tag}c"))?,
            server: Netns::create(&format!("{tag}s"))?,
        };
        wire_pod(&world.node, &world.client, CLIENT_IF, CLIENT_IP)?;
        wire_pod(&world.node, &world.server, SERVER_IF, SERVER_IP)?;
        world.node.sysctl(&["net.ipv4.ip_forward=1"])?;
        Ok(world)
    }

    /// The sockets the load generator uses on this world.
    pub fn sockets(&self) -> Result<Sockets, String> {
        let (udp_rx, udp_rx_denied, tcp_listener) = in_netns(&self.server, || {
            let bind = |port| {
                let s = UdpSocket::bind(SocketAddrV4::new(SERVER_IP, port))
                    .map_err(|e| format!("bind UDP {SERVER_IP}:{port}: {e}"))?;
                s.set_nonblocking(true).map_err(|e| e.to_string())?;
                Ok::<_, String>(s)
            };
            let l = TcpListener::bind(SocketAddrV4::new(SERVER_IP, TCP_PORT))
                .map_err(|e| format!("listen on TCP {SERVER_IP}:{TCP_PORT}: {e}"))?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            Ok((bind(UDP_PORT)?, bind(DENIED_UDP_PORT)?, l))
        })?;
        let (udp_tx, udp_tx_denied) = in_netns(&self.client, || {
            let connect = |port| {
                let s = UdpSocket::bind(SocketAddrV4::new(CLIENT_IP, 0))
                    .map_err(|e| format!("bind UDP {CLIENT_IP}: {e}"))?;
                s.connect(SocketAddrV4::new(SERVER_IP, port))
                    .map_err(|e| format!("connect UDP to {SERVER_IP}:{port}: {e}"))?;
                s.set_nonblocking(true).map_err(|e| e.to_string())?;
                Ok::<_, String>(s)
            };
            Ok((connect(UDP_PORT)?, connect(DENIED_UDP_PORT)?))
        })?;
        Ok(Sockets {
            udp_tx,
            udp_rx,
            udp_tx_denied,
            udp_rx_denied,
            tcp_listener,
        })
    }
}

/// Sockets of one world. UDP ones are made once; TCP clients are made per connection by a
/// thread inside the client namespace ([`tcp_once`]).
pub struct Sockets {
    /// Client -> server's [`UDP_PORT`] (connected, non-blocking).
    pub udp_tx: UdpSocket,
    pub udp_rx: UdpSocket,
    /// Client -> server's [`DENIED_UDP_PORT`], which no entry allows.
    pub udp_tx_denied: UdpSocket,
    pub udp_rx_denied: UdpSocket,
    /// Server's [`TCP_PORT`] (non-blocking).
    pub tcp_listener: TcpListener,
}

pub const PAYLOAD: [u8; 64] = [0x5a; 64];
/// How long one connection attempt may take before it counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);

/// Reads every datagram waiting on `rx` (non-blocking): how many.
pub fn drain(rx: &UdpSocket, buf: &mut [u8]) -> Result<u64, String> {
    let mut n = 0;
    // Bounded: a socket buffer holds a few hundred small datagrams.
    for _ in 0..100_000 {
        match rx.recv(buf) {
            Ok(_) => n += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(n),
            Err(e) => return Err(format!("UDP receive: {e}")),
        }
    }
    Ok(n)
}

/// Sends one datagram; a full queue or a refused port is not an error (it just is not
/// received).
pub fn send(tx: &UdpSocket) -> Result<(), String> {
    match tx.send(&PAYLOAD) {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::WouldBlock | ErrorKind::ConnectionRefused
            ) || e.raw_os_error() == Some(libc::ENOBUFS) =>
        {
            Ok(())
        }
        Err(e) => Err(format!("UDP send: {e}")),
    }
}

/// One new TCP connection, from a thread inside the client namespace: connect, accept on the
/// server's listener, close. The client closes first with SO_LINGER 0 (a RST, no TIME_WAIT),
/// so that a run of several seconds at tens of thousands of connections per second never
/// runs out of ports. Per connection the node forwards SYN, SYN-ACK, ACK and RST.
/// `Ok(false)`: the connection did not complete within [`CONNECT_TIMEOUT`].
pub fn tcp_once(listener: &TcpListener) -> Result<bool, String> {
    let server = SocketAddr::V4(SocketAddrV4::new(SERVER_IP, TCP_PORT));
    let client = match TcpStream::connect_timeout(&server, CONNECT_TIMEOUT) {
        Ok(c) => c,
        Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::ConnectionRefused) => {
            return Ok(false)
        }
        Err(e) => return Err(format!("TCP connect to {server}: {e}")),
    };
    set_linger_zero(&client)?;
    let start = Instant::now();
    let accepted = loop {
        match listener.accept() {
            Ok((s, _)) => break Some(s),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if start.elapsed() > CONNECT_TIMEOUT {
                    break None;
                }
                std::hint::spin_loop();
            }
            Err(e) => return Err(format!("TCP accept: {e}")),
        }
    };
    let ok = accepted.is_some();
    // The client's RST first; the accepted socket is then closed already and sends nothing.
    drop(client);
    drop(accepted);
    Ok(ok)
}

#[allow(unsafe_code)] // SO_LINGER has no stable std API
fn set_linger_zero(s: &TcpStream) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor owned by `s`, and a pointer to a `linger` that lives
    // across the call with its exact size.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(format!("SO_LINGER: {}", std::io::Error::last_os_error()))
    }
}

/// What [`check`] found.
#[derive(Debug)]
pub struct Check {
    pub udp_received: bool,
    pub tcp_accepted: bool,
    /// Datagrams to [`DENIED_UDP_PORT`] received, of [`DENIED_PROBES`] sent.
    pub denied_received: u64,
}

pub const DENIED_PROBES: u64 = 20;

/// Sends the probed flows once (waiting up to a second for neighbour resolution and the
/// first packets), then [`DENIED_PROBES`] datagrams to the unlisted port.
pub fn check(world: &World, socks: &Sockets) -> Result<Check, String> {
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut udp_received = false;
    while !udp_received && Instant::now() < deadline {
        send(&socks.udp_tx)?;
        std::thread::sleep(Duration::from_millis(5));
        udp_received = drain(&socks.udp_rx, &mut buf)? > 0;
    }
    let tcp_accepted = in_netns(&world.client, || tcp_once(&socks.tcp_listener))?;
    drain(&socks.udp_rx_denied, &mut buf)?;
    for _ in 0..DENIED_PROBES {
        send(&socks.udp_tx_denied)?;
    }
    std::thread::sleep(Duration::from_millis(50));
    let denied_received = drain(&socks.udp_rx_denied, &mut buf)?;
    Ok(Check {
        udp_received,
        tcp_accepted,
        denied_received,
    })
}
