//! An in-memory connection for whole handshakes on one thread, without sockets
//! or a scheduler: both ends are driven alternately until both are done.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::hint::black_box;
use std::io::{self, Read, Write};
use std::rc::Rc;

use openssl::ssl::{
    ConnectConfiguration, HandshakeError, MidHandshakeSslStream, SslAcceptor, SslConnector,
    SslStream,
};

/// One direction of an in-memory connection.
#[derive(Clone, Debug, Default)]
struct Pipe(Rc<RefCell<VecDeque<u8>>>);

/// One end: reads what the other end wrote; `WouldBlock` when there is nothing.
#[derive(Debug)]
pub(crate) struct End {
    rx: Pipe,
    tx: Pipe,
}

impl Read for End {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut queue = self.rx.0.borrow_mut();
        if queue.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(queue.len());
        for (slot, byte) in buf.iter_mut().zip(queue.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }
}

impl Write for End {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx.0.borrow_mut().extend(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The client's end and the server's end of a new connection.
pub(crate) fn ends() -> (End, End) {
    let (up, down) = (Pipe::default(), Pipe::default());
    let client = End {
        rx: down.clone(),
        tx: up.clone(),
    };
    (client, End { rx: up, tx: down })
}

/// Where one side's handshake stands.
pub(crate) enum Side {
    Mid(MidHandshakeSslStream<End>),
    Done(SslStream<End>),
}

/// The side after one handshake call; a real failure is an error.
fn step(result: Result<SslStream<End>, HandshakeError<End>>) -> Result<Side, String> {
    match result {
        Ok(stream) => Ok(Side::Done(stream)),
        Err(HandshakeError::WouldBlock(mid)) => Ok(Side::Mid(mid)),
        Err(e) => Err(e.to_string()),
    }
}

/// One of the server's calls in a handshake: the first, which makes the `Ssl`
/// (`SSL_new`) and reads the client hello, or a later one.
pub(crate) enum ServerStep<'a> {
    Accept(&'a SslAcceptor, End),
    Resume(MidHandshakeSslStream<End>),
}

impl ServerStep<'_> {
    /// Makes the call.
    pub(crate) fn take(self) -> Result<Side, String> {
        step(match self {
            Self::Accept(acceptor, end) => acceptor.accept(end),
            Self::Resume(mid) => mid.handshake(),
        })
    }
}

/// More rounds than any handshake takes: past them, the handshake is stuck.
const MAX_ROUNDS: usize = 16;

/// A full handshake between `acceptor` and `client`, which asks for `name`,
/// driven alternately on this thread (the client first) until both sides are
/// done. Every server step goes through `server`, which takes it
/// ([`ServerStep::take`]) and may measure it. Returns the client's stream and
/// the server's.
pub(crate) fn handshake<'a>(
    acceptor: &'a SslAcceptor,
    client: ConnectConfiguration,
    name: &str,
    mut server: impl FnMut(ServerStep<'a>) -> Result<Side, String>,
) -> Result<(SslStream<End>, SslStream<End>), String> {
    let (client_end, server_end) = ends();
    let mut c = step(client.connect(name, client_end))?;
    let mut s = server(ServerStep::Accept(acceptor, server_end))?;
    for _ in 0..MAX_ROUNDS {
        match (c, s) {
            (Side::Done(c), Side::Done(s)) => return Ok((c, s)),
            (c_side, s_side) => {
                c = match c_side {
                    Side::Mid(mid) => step(mid.handshake())?,
                    done => done,
                };
                s = match s_side {
                    Side::Mid(mid) => server(ServerStep::Resume(mid))?,
                    done => done,
                };
            }
        }
    }
    Err(format!("handshake not done after {MAX_ROUNDS} rounds"))
}

/// [`handshake`] with a client of `connector` that asks for `localhost` and
/// does not check the name; a failure panics. The streams are kept from the
/// optimiser, then dropped.
// The sites bench includes this module alone and asks for each site's name.
#[allow(dead_code)]
pub(crate) fn local_handshake<'a>(
    acceptor: &'a SslAcceptor,
    connector: &SslConnector,
    server: impl FnMut(ServerStep<'a>) -> Result<Side, String>,
) {
    let mut client = connector.configure().unwrap();
    client.set_verify_hostname(false);
    let streams = handshake(acceptor, client, "localhost", server)
        .unwrap_or_else(|e| panic!("in-memory handshake failed: {e}"));
    black_box(streams);
}
