//! An in-memory connection for whole handshakes on one thread, without sockets
//! or a scheduler: both ends are driven alternately until both are done.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::rc::Rc;

use openssl::ssl::{HandshakeError, MidHandshakeSslStream, SslStream};

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
pub(crate) fn step(result: Result<SslStream<End>, HandshakeError<End>>) -> Result<Side, String> {
    match result {
        Ok(stream) => Ok(Side::Done(stream)),
        Err(HandshakeError::WouldBlock(mid)) => Ok(Side::Mid(mid)),
        Err(e) => Err(e.to_string()),
    }
}
