//! Watches the kernel for network changes (links, addresses and routes, IPv4 and IPv6)
//! through rtnetlink multicast, and reports them debounced: one signal after a burst settles,
//! as a phone's network callbacks report a new default network. Changes on interfaces the
//! caller names as its own (the TUN) are ignored. Linux only.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::MulticastGroup;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long a burst of changes must be quiet before it is reported.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(50);

/// A running watcher; dropping it stops it.
#[derive(Debug)]
pub struct NetWatch {
    changes: mpsc::Receiver<()>,
    ignored: Arc<AtomicU32>,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for NetWatch {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

impl NetWatch {
    /// Subscribes to link, address and route changes (needs a tokio runtime).
    pub fn start(debounce: Duration) -> io::Result<Self> {
        let groups = [
            MulticastGroup::Link,
            MulticastGroup::Ipv4Ifaddr,
            MulticastGroup::Ipv6Ifaddr,
            MulticastGroup::Ipv4Route,
            MulticastGroup::Ipv6Route,
        ];
        let (connection, _handle, mut messages) = rtnetlink::new_multicast_connection(&groups)?;
        let ignored = Arc::new(AtomicU32::new(0));
        let (raw_tx, mut raw_rx) = mpsc::channel::<()>(1);
        let (tx, changes) = mpsc::channel::<()>(1);
        let filter = ignored.clone();
        let connection = tokio::spawn(async move {
            let reader = async move {
                while let Some((message, _)) = messages.next().await {
                    let NetlinkPayload::InnerMessage(m) = message.payload else {
                        continue;
                    };
                    let ours = filter.load(Ordering::Relaxed);
                    if ours != 0 && interface_of(&m) == Some(ours) {
                        continue;
                    }
                    log::trace!("netlink: {}", kind_of(&m));
                    // A full queue already holds a pending change: nothing is lost.
                    let _ = raw_tx.try_send(());
                }
            };
            tokio::select! {
                () = connection => {}
                () = reader => {}
            }
        });
        let debouncer = tokio::spawn(async move {
            while raw_rx.recv().await.is_some() {
                // Absorb the rest of the burst.
                loop {
                    match tokio::time::timeout(debounce, raw_rx.recv()).await {
                        Ok(Some(())) => continue,
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                if tx.send(()).await.is_err() {
                    return;
                }
            }
        });
        Ok(Self {
            changes,
            ignored,
            tasks: [connection, debouncer],
        })
    }

    /// Ignores changes on interface `index` from now on (our own TUN's routes and address).
    pub fn ignore_interface(&self, index: u32) {
        self.ignored.store(index, Ordering::Relaxed);
    }

    /// Waits for the next settled change; `None` once the watcher failed.
    pub async fn changed(&mut self) -> Option<()> {
        self.changes.recv().await
    }
}

/// The interface a link, address or route message is about.
fn interface_of(m: &RouteNetlinkMessage) -> Option<u32> {
    use rtnetlink::packet_route::route::RouteAttribute;
    match m {
        RouteNetlinkMessage::NewLink(l) | RouteNetlinkMessage::DelLink(l) => Some(l.header.index),
        RouteNetlinkMessage::NewAddress(a) | RouteNetlinkMessage::DelAddress(a) => {
            Some(a.header.index)
        }
        RouteNetlinkMessage::NewRoute(r) | RouteNetlinkMessage::DelRoute(r) => {
            r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            })
        }
        _ => None,
    }
}

fn kind_of(m: &RouteNetlinkMessage) -> &'static str {
    match m {
        RouteNetlinkMessage::NewLink(_) => "new link",
        RouteNetlinkMessage::DelLink(_) => "link gone",
        RouteNetlinkMessage::NewAddress(_) => "new address",
        RouteNetlinkMessage::DelAddress(_) => "address gone",
        RouteNetlinkMessage::NewRoute(_) => "new route",
        RouteNetlinkMessage::DelRoute(_) => "route gone",
        _ => "other",
    }
}
