//! The one real network step of the emulator: when a caller passes a proxy, the emulator
//! connects to it, as the real library would before anything else, so that a closed proxy gives
//! 10001 at once (measured on the real library with a closed port on 127.0.0.1). Nothing is
//! sent through the connection.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Connects to `proxy` (`http://host:port`, `https://`, `socks5://` or `socks5h://`, optional
/// trailing `/`) within `timeout_secs` (at least 1 s). Empty means no proxy. Any failure,
/// unparseable text included, is a network error.
pub(crate) fn reach_proxy(proxy: &[u8], timeout_secs: i32) -> Result<(), ()> {
    if proxy.is_empty() {
        return Ok(());
    }
    let text = std::str::from_utf8(proxy).map_err(|_| ())?;
    let authority = ["http://", "https://", "socks5://", "socks5h://"]
        .iter()
        .find_map(|scheme| text.strip_prefix(scheme))
        .ok_or(())?
        .trim_end_matches('/');
    let timeout = Duration::from_secs(u64::from(timeout_secs.max(1).unsigned_abs()));
    let addrs = authority.to_socket_addrs().map_err(|_| ())?;
    for addr in addrs {
        if TcpStream::connect_timeout(&addr, timeout).is_ok() {
            return Ok(());
        }
    }
    Err(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn an_open_proxy_is_reached_and_a_closed_one_is_not() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(
            reach_proxy(format!("http://127.0.0.1:{port}").as_bytes(), 1),
            Ok(())
        );
        assert_eq!(
            reach_proxy(format!("socks5://127.0.0.1:{port}/").as_bytes(), 1),
            Ok(())
        );
        drop(listener);
        assert_eq!(
            reach_proxy(format!("http://127.0.0.1:{port}").as_bytes(), 1),
            Err(())
        );
    }

    #[test]
    fn no_proxy_passes_and_bad_text_fails() {
        assert_eq!(reach_proxy(b"", 5), Ok(()));
        for bad in [
            &b"127.0.0.1:1"[..],
            b"ftp://127.0.0.1:1",
            b"http://",
            b"http://127.0.0.1",
            b"\xff",
        ] {
            assert_eq!(
                reach_proxy(bad, 1),
                Err(()),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
