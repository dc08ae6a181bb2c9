//! The TLS inspector's parser: the SNI and ALPN of a ClientHello, read from
//! bytes peeked at the start of a connection (RFC 8446 §4.1.2, RFC 6066 §3,
//! RFC 7301 §3). Every length is checked against the bytes at hand, so
//! truncated or hostile input ends in `Incomplete` or `NotTls`, never a panic.

/// The most handshake bytes looked at; a larger ClientHello is refused, as
/// Envoy refuses one past its `max_client_hello_size`.
pub const MAX_CLIENT_HELLO: usize = 16 * 1024;

const HANDSHAKE_RECORD: u8 = 0x16;
const CLIENT_HELLO: u8 = 1;
const SERVER_NAME: u16 = 0;
const HOST_NAME: u8 = 0;
const ALPN: u16 = 16;

/// What a ClientHello tells before any key is exchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    /// The SNI host name, lowercased.
    pub server_name: Option<String>,
    /// The offered ALPN protocols, in the client's order.
    pub alpn: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Hello(ClientHello),
    /// A plausible start; more bytes are needed.
    Incomplete,
    /// Not a TLS ClientHello.
    NotTls,
    /// A ClientHello longer than [`MAX_CLIENT_HELLO`].
    TooLarge,
}

/// Parses the first bytes a client sent.
pub fn parse(bytes: &[u8]) -> Parsed {
    let message = match handshake_message(bytes) {
        Ok(message) => message,
        Err(parsed) => return parsed,
    };
    match client_hello(&message) {
        Some(hello) => Parsed::Hello(hello),
        None => Parsed::NotTls,
    }
}

/// The first handshake message, joined from as many records as it spans.
fn handshake_message(mut bytes: &[u8]) -> Result<Vec<u8>, Parsed> {
    let mut message = Vec::new();
    loop {
        let Some(header) = bytes.get(..5) else {
            return Err(if bytes.first().is_some_and(|b| *b != HANDSHAKE_RECORD) {
                Parsed::NotTls
            } else {
                Parsed::Incomplete
            });
        };
        // Record versions are 0x0301..=0x0304 (SSL 3.0's 0x0300 is refused too).
        if header[0] != HANDSHAKE_RECORD || header[1] != 3 || !(1..=4).contains(&header[2]) {
            return Err(Parsed::NotTls);
        }
        let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if length == 0 {
            return Err(Parsed::NotTls);
        }
        let Some(fragment) = bytes.get(5..5 + length) else {
            return Err(Parsed::Incomplete);
        };
        message.extend_from_slice(fragment);
        bytes = &bytes[5 + length..];
        if message[0] != CLIENT_HELLO {
            return Err(Parsed::NotTls);
        }
        let Some(len) = message.get(1..4) else {
            continue;
        };
        let total =
            4 + (usize::from(len[0]) << 16 | usize::from(len[1]) << 8 | usize::from(len[2]));
        if total > MAX_CLIENT_HELLO {
            return Err(Parsed::TooLarge);
        }
        if message.len() >= total {
            message.truncate(total);
            return Ok(message);
        }
    }
}

/// Reads big-endian fields, failing on any overrun.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let taken = self.0.get(..n)?;
        self.0 = &self.0[n..];
        Some(taken)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A vector with a one- or two-byte length prefix.
    fn vec8(&mut self) -> Option<Reader<'a>> {
        let n = self.u8()?;
        self.take(usize::from(n)).map(Reader)
    }

    fn vec16(&mut self) -> Option<Reader<'a>> {
        let n = self.u16()?;
        self.take(usize::from(n)).map(Reader)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn client_hello(message: &[u8]) -> Option<ClientHello> {
    let mut body = Reader(message.get(4..)?);
    body.take(2 + 32)?; // legacy_version, random
    body.vec8()?; // legacy_session_id
    body.vec16()?; // cipher_suites
    body.vec8()?; // legacy_compression_methods
    let mut hello = ClientHello::default();
    if body.is_empty() {
        return Some(hello); // no extensions at all
    }
    let mut extensions = body.vec16()?;
    while !extensions.is_empty() {
        let kind = extensions.u16()?;
        let mut data = extensions.vec16()?;
        match kind {
            SERVER_NAME => hello.server_name = server_name(&mut data)?,
            ALPN => hello.alpn = alpn(&mut data)?,
            _ => {}
        }
    }
    Some(hello)
}

fn server_name(data: &mut Reader<'_>) -> Option<Option<String>> {
    let mut list = data.vec16()?;
    while !list.is_empty() {
        let kind = list.u8()?;
        let name = list.vec16()?;
        if kind == HOST_NAME {
            let name = std::str::from_utf8(name.0).ok()?;
            return Some(Some(name.to_ascii_lowercase()));
        }
    }
    Some(None)
}

fn alpn(data: &mut Reader<'_>) -> Option<Vec<String>> {
    let mut list = data.vec16()?;
    let mut protocols = Vec::new();
    while !list.is_empty() {
        let protocol = list.vec8()?;
        protocols.push(String::from_utf8_lossy(protocol.0).into_owned());
    }
    Some(protocols)
}

#[cfg(test)]
mod tests;
