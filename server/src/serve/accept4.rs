//! `accept4(2)` with `SOCK_NONBLOCK | SOCK_CLOEXEC`: the connection comes out
//! of the kernel ready for the runtime. The standard library's `accept` sets
//! only `SOCK_CLOEXEC`, and making the socket non-blocking afterwards costs an
//! `ioctl(FIONBIO)` per connection (ci/bench-latency.sh counts them).

#![allow(unsafe_code)] // accept4 and the sockaddr it fills, each with its SAFETY note.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{
    Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpListener, TcpStream,
};
use std::os::fd::{AsRawFd, FromRawFd};

/// Accepts one connection from `listener` as a non-blocking, close-on-exec
/// socket, with its peer's address; `WouldBlock` when none is waiting.
pub(super) fn accept_nonblocking(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = socklen(size_of::<libc::sockaddr_storage>());
    // SAFETY: `storage` is a writable sockaddr_storage of `len` bytes, which
    // accept4 fills up to `len` and shortens `len` to; the listener's
    // descriptor is open for the call.
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            storage.as_mut_ptr().cast(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: accept4 returned a new descriptor that nothing else owns; the
    // stream closes it.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    // SAFETY: zero-initialised and then written by accept4, so every byte is
    // initialised whatever the family.
    let storage = unsafe { storage.assume_init() };
    Ok((stream, peer_address(&storage)?))
}

/// The peer's address from what accept4 wrote (IPv4 or IPv6: TCP listeners).
fn peer_address(storage: &libc::sockaddr_storage) -> io::Result<SocketAddr> {
    let raw: *const libc::sockaddr_storage = storage;
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which
            // fits in and is less aligned than sockaddr_storage.
            let v4 = unsafe { &*raw.cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
            Ok(SocketAddrV4::new(ip, u16::from_be(v4.sin_port)).into())
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for a sockaddr_in6.
            let v6 = unsafe { &*raw.cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(v6.sin6_addr.s6_addr);
            Ok(SocketAddrV6::new(
                ip,
                u16::from_be(v6.sin6_port),
                v6.sin6_flowinfo,
                v6.sin6_scope_id,
            )
            .into())
        }
        family => Err(io::Error::other(format!(
            "accepted a connection of address family {family}"
        ))),
    }
}

fn socklen(bytes: usize) -> libc::socklen_t {
    libc::socklen_t::try_from(bytes).unwrap_or(libc::socklen_t::MAX)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    #[test]
    fn accepts_non_blocking_with_the_peer_address() {
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(listener) = TcpListener::bind(bind) else {
                continue; // no IPv6 on this machine
            };
            listener.set_nonblocking(true).unwrap();
            let err = accept_nonblocking(&listener).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
            let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let (mut stream, peer) = loop {
                match accept_nonblocking(&listener) {
                    Ok(accepted) => break accepted,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        assert!(std::time::Instant::now() < deadline, "no connection");
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    Err(e) => panic!("{e}"),
                }
            };
            assert_eq!(peer, client.local_addr().unwrap());
            // Non-blocking: a read with nothing sent does not wait.
            let mut buf = [0; 4];
            let err = stream.read(&mut buf).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
            client.write_all(b"ping").unwrap();
            drop(client);
        }
    }
}
