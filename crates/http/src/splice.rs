//! Protocol upgrades (WebSocket, SPDY) relayed byte for byte after the
//! request itself went through the pipeline: `kubectl exec`, `attach` and
//! `port-forward`.

use crate::exec::ExecTap;
use crate::execmask::ExecMasker;
use crate::proxy::Exchange;
use gatehouse_core::mask::MaskCounts;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Relay an upgraded connection in the background until either side
/// closes (or the request's deadline comes: its token expires or the
/// access grant that admitted the caller ends).
pub(crate) fn spawn(
    exchange: Exchange,
    tap: Option<ExecTap>,
    client: OnUpgrade,
    upstream: OnUpgrade,
    busy: crate::sessions::Busy,
    masker: Option<ExecMasker>,
) {
    tokio::spawn(async move {
        let (client, upstream) = tokio::join!(client, upstream);
        let (client, upstream) = match (client, upstream) {
            (Ok(c), Ok(u)) => (TokioIo::new(c), TokioIo::new(u)),
            (Err(e), _) | (_, Err(e)) => {
                exchange
                    .finish(
                        http::StatusCode::SWITCHING_PROTOCOLS,
                        0,
                        &MaskCounts::default(),
                        None,
                        Some(format!("the upgrade failed: {e}")),
                    )
                    .await;
                return;
            }
        };
        let mut tap = tap;
        let (cr, cw) = tokio::io::split(client);
        let (ur, uw) = tokio::io::split(upstream);
        let (to_up_tx, mut to_up_rx) = tokio::sync::mpsc::channel::<(bool, bytes::Bytes)>(32);
        let up = relay(cr, uw, to_up_tx.clone(), true, None);
        let down = relay(ur, cw, to_up_tx, false, masker);
        let relays = async { tokio::join!(up, down) };
        tokio::pin!(relays);
        // The observer ends early only when the stream cannot be recorded
        // any more; the relays are then dropped, which cuts both sides.
        let observe = async {
            while let Some((from_client, bytes)) = to_up_rx.recv().await {
                if let Some(t) = tap.as_mut() {
                    if !t.observe(from_client, &bytes) {
                        return Some("the stream could not be recorded, so it was cut".to_string());
                    }
                }
            }
            std::future::pending::<Option<String>>().await
        };
        let mut ended_by = None;
        let mut deadline_end = None;
        let deadline = exchange.deadline.clone();
        let ((sent_up, _), (sent_down, masker)) = {
            tokio::select! {
                (u, d) = &mut relays => (u, d),
                cut = observe => { ended_by = cut; ((0, None), (0, None)) }
                end = deadline.reached() => {
                    ended_by = Some(end.message());
                    deadline_end = Some(end);
                    ((0, None), (0, None))
                }
            }
        };
        if let Some(end) = &deadline_end {
            exchange.record_cut(end).await;
        }
        // Whatever was relayed after the observer last looked is recorded too.
        while let Ok((from_client, bytes)) = to_up_rx.try_recv() {
            if let Some(t) = tap.as_mut() {
                t.observe(from_client, &bytes);
            }
        }
        let (summary, counts) = match tap {
            Some(t) => t.close(&exchange).await,
            None => (None, MaskCounts::default()),
        };
        let mut summary = summary.unwrap_or_else(|| serde_json::json!({}));
        if let Some(obj) = summary.as_object_mut() {
            obj.insert("bytes_from_client".into(), sent_up.into());
            if let Some(m) = &masker {
                // What the user was sent: masked, passed by a rule, or cut.
                obj.insert("output_masking".into(), m.summary());
            }
        }
        if let Some(why) = masker.as_ref().and_then(|m| m.ended.clone()) {
            ended_by.get_or_insert(why);
        }
        exchange
            .finish(
                http::StatusCode::SWITCHING_PROTOCOLS,
                sent_down,
                &counts,
                Some(summary),
                ended_by,
            )
            .await;
        drop(busy);
    });
}

/// Copy one direction, showing every piece to the observer; the writer is
/// shut down when the reader ends so the other side sees the close. With
/// `masker` (exec output on a masking connection) what is written is its
/// re-written stream; the observer still sees the original bytes (the
/// recording masks them itself).
async fn relay<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut from: R,
    mut to: W,
    observer: tokio::sync::mpsc::Sender<(bool, bytes::Bytes)>,
    from_client: bool,
    mut masker: Option<ExecMasker>,
) -> (u64, Option<ExecMasker>) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let piece = bytes::Bytes::copy_from_slice(&buf[..n]);
        let written = match masker.as_mut() {
            Some(m) => bytes::Bytes::from(m.feed(&piece)),
            None => piece.clone(),
        };
        if to.write_all(&written).await.is_err() {
            break;
        }
        total += written.len() as u64;
        let _ = observer.send((from_client, piece)).await;
        if masker.as_ref().is_some_and(|m| m.ended.is_some()) {
            break;
        }
    }
    let _ = to.shutdown().await;
    (total, masker)
}
