//! A TCP relay in ROUTER for what the kernel cannot do to a flow itself
//! (delay where there is no netem; the place for "freeze a flow after N
//! bytes" and the like).

use super::*;

/// Chunks a direction may hold while they wait out the delay.
const QUEUE: usize = 64;

/// Relays every connection to `listener` (redirected here by nft) to
/// its original destination, holding each chunk `delay` each way; with
/// `freeze`, the server's bytes past that count are never passed on, nor
/// the end of the flow, nor anything more from the client.
/// Call it on a thread in ROUTER: the threads it starts stay there.
pub(super) fn serve(listener: TcpListener, delay: Duration, freeze: Option<u64>) -> probe::Served {
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
        let frozen = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let f2 = frozen.clone();
        let up = std::thread::spawn(move || pump(client, server, delay, None, f2));
        pump(s2, c2, delay, freeze, frozen);
        let _ = up.join();
    })
}

/// Copies `from` to `to`, each chunk `delay` after it was read, then
/// passes the end on; with `limit`, only that many bytes, and then sets
/// `frozen`, after which neither direction passes anything.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    delay: Duration,
    limit: Option<u64>,
    frozen: Arc<std::sync::atomic::AtomicBool>,
) {
    let (tx, rx) = mpsc::sync_channel::<(Instant, Option<Vec<u8>>)>(QUEUE);
    let writer = std::thread::spawn(move || {
        let mut sent = 0u64;
        for (due, chunk) in rx {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let Some(bytes) = chunk else { break };
            if frozen.load(Ordering::Relaxed) {
                continue;
            }
            let room = limit.map_or(bytes.len() as u64, |l| l.saturating_sub(sent));
            let n = (bytes.len() as u64).min(room) as usize;
            if to.write_all(&bytes[..n]).is_err() {
                break;
            }
            sent += n as u64;
            if n < bytes.len() || limit.is_some_and(|l| sent >= l) {
                frozen.store(true, Ordering::Relaxed);
            }
        }
        // A frozen flow does not end either: the client finds out by
        // waiting.
        if !frozen.load(Ordering::Relaxed) {
            let _ = to.shutdown(Shutdown::Write);
        }
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
