//! A scripted peer for tests that need a sender to misbehave in a precise way:
//! it listens on 127.0.0.1, answers `Ping` and `ListGames` like a real peer
//! sharing one game, and hands every other request, with its send stream, to
//! the test's script.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use lanspread::config::Limits;
use lanspread::peer::transport::make_endpoint;
use lanspread::proto::{
    ErrorKind, GameDetails, GameListing, GameSummary, Hello, PROTOCOL_VERSION, Request, Response, file_list_pages,
    read_frame, write_frame,
};
use quinn::SendStream;

/// Starts the peer; `answer` gets every request but `Ping` and `ListGames` and must finish
/// (or reset) the stream itself.
pub fn fake_peer<F, Fut>(id: &str, version: &str, answer: F) -> SocketAddr
where
    F: Fn(Request, SendStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let endpoint = make_endpoint("127.0.0.1:0".parse().unwrap(), &Limits::default()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let summary = GameSummary {
        id: id.into(),
        name: id.into(),
        version: version.into(),
        size: 1,
        expanded_size: None,
    };
    let shared = Arc::new((summary, answer));
    tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            let shared = shared.clone();
            tokio::spawn(async move {
                let Ok(connection) = incoming.await else { return };
                while let Ok((mut send, mut recv)) = connection.accept_bi().await {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let Ok(request) = read_frame::<_, Request>(&mut recv).await else {
                            return;
                        };
                        let (summary, answer) = &*shared;
                        let response = match request {
                            Request::Ping(_) => Response::Pong(Hello {
                                protocol_version: PROTOCOL_VERSION,
                                peer_id: format!("fake-{addr}"),
                                name: "fake".into(),
                                library_revision: 1,
                            }),
                            Request::ListGames => Response::Games {
                                games: vec![summary.clone()],
                            },
                            request => return answer(request, send).await,
                        };
                        let _ = write_frame(&mut send, &response).await;
                        let _ = send.finish();
                    });
                }
            });
        }
    });
    addr
}

/// Answers `GetGame` as a real peer does: the listing header, then the pages.
pub async fn send_listing(send: &mut SendStream, details: &GameDetails) {
    let listing = GameListing {
        id: details.id.clone(),
        version: details.version.clone(),
        entries: details.files.len() as u64,
    };
    let _ = write_frame(send, &Response::GameListing(listing)).await;
    for page in file_list_pages(&details.files).unwrap() {
        let page = Response::FileListPage { files: page.to_vec() };
        let _ = write_frame(send, &page).await;
    }
    let _ = send.finish();
}

/// The answer to a request the script does not cover.
pub async fn not_scripted(mut send: SendStream) {
    let _ = write_frame(&mut send, &Response::error(ErrorKind::Internal, "not scripted")).await;
    let _ = send.finish();
}

/// For relays in front of an honest peer: passes `GetGame` and `GetBlockHashes` through to
/// `honest` unchanged and returns `None`; any other request is handed back, for the relay's
/// own answer.
#[allow(dead_code)] // not every test binary has a relay
pub async fn pass_through(
    client: &lanspread::peer::client::PeerClient,
    honest: SocketAddr,
    request: Request,
    send: &mut SendStream,
) -> Option<Request> {
    match request {
        Request::GetGame { id } => {
            let details = client.get_game(honest, &id).await.unwrap();
            send_listing(send, &details).await;
        }
        Request::GetBlockHashes { id, path } => {
            let details = client.get_game(honest, &id).await.unwrap();
            let size = details.files.iter().find(|f| f.path == path).unwrap().size;
            let count = size.div_ceil(lanspread::content::BLOCK_SIZE);
            let hashes = client.get_block_hashes(honest, &id, &path, count).await.unwrap();
            let _ = write_frame(send, &Response::BlockHashes { count }).await;
            for block in &hashes.blocks {
                let _ = send.write_all(block.as_bytes()).await;
            }
        }
        other => return Some(other),
    }
    None
}
