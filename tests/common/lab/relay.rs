//! A TCP relay in ROUTER for what the kernel cannot do to a flow itself
//! (delay where there is no netem; the place for "freeze a flow after N
//! bytes" and the like).

use super::*;

/// Chunks a direction may hold while they wait out the delay.
const QUEUE: usize = 64;

/// Relays every connection to `listener` (redirected here by nft) to
/// its original destination, holding each chunk `delay` each way.
/// Call it on a thread in ROUTER: the threads it starts stay there.
pub(super) fn serve(listener: TcpListener, delay: Duration) -> probe::Served {
    probe::serve(listener, move |client| {
        let Ok(to) = rustix::net::sockopt::ip_original_dst(&client) else {
            return;
        };
        let Ok(server) = TcpStream::connect_timeout(&to.into(), LAB_DEADLINE) else {
            return;
        };
        // Long-lived connections (libp2p's) may idle: no timeouts here.
        for s in [&client, &server] {
            let _ = s.set_read_timeout(None);
            let _ = s.set_write_timeout(None);
            let _ = s.set_nodelay(true);
        }
        let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
            return;
        };
        let up = std::thread::spawn(move || pump(client, server, delay));
        pump(s2, c2, delay);
        let _ = up.join();
    })
}

/// Copies `from` to `to`, each chunk `delay` after it was read, then
/// passes the end on.
fn pump(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (tx, rx) = mpsc::sync_channel::<(Instant, Option<Vec<u8>>)>(QUEUE);
    let writer = std::thread::spawn(move || {
        for (due, chunk) in rx {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let Some(bytes) = chunk else { break };
            if to.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx
                    .send((Instant::now() + delay, Some(buf[..n].to_vec())))
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    let _ = tx.send((Instant::now() + delay, None));
    drop(tx);
    let _ = writer.join();
    let _ = from.shutdown(Shutdown::Read);
}
