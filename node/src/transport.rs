//! QUIC with mutual TLS between pinned keys.
//!
//! Each node's certificate is self-signed with its node key, so completing the TLS handshake
//! proves possession of the NodeId. There is no certificate authority: a node accepts a peer only
//! if the peer's key is pinned (`poa-node peer add`), and a client accepts a server only if it
//! presents exactly the key it dialled. Both refusals happen inside the handshake and are logged.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use poa_protocol::NodeId;
use poa_protocol::sign::NodeKey;
use poa_protocol::wire::ALPN;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// The name every node's certificate carries. Identity is the key, not the name.
const CERT_NAME: &str = "poa-node";

/// Errors setting up the transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The certificate could not be made.
    #[error("certificate: {0}")]
    Certificate(String),
    /// TLS configuration failed.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// QUIC refused a configuration.
    #[error("QUIC: {0}")]
    Quic(String),
}

/// The set of pinned peer keys, shared with the TLS verifier so pins added while serving take
/// effect for the next handshake.
pub type Pins = Arc<RwLock<HashSet<NodeId>>>;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The self-signed certificate and private key of a node key.
pub fn certificate(
    key: &NodeKey,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), TransportError> {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let der = key
        .signing_key()
        .to_pkcs8_der()
        .map_err(|e| TransportError::Certificate(e.to_string()))?;
    let der_bytes = der.as_bytes().to_vec();
    let kp = rcgen::KeyPair::try_from(der_bytes.as_slice())
        .map_err(|e| TransportError::Certificate(e.to_string()))?;
    let cert = rcgen::CertificateParams::new(vec![CERT_NAME.to_string()])
        .and_then(|p| p.self_signed(&kp))
        .map_err(|e| TransportError::Certificate(e.to_string()))?;
    Ok((
        cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der_bytes)),
    ))
}

/// The NodeId a certificate's key names, if it is an ed25519 certificate.
pub fn node_id_of(cert: &CertificateDer<'_>) -> Option<NodeId> {
    const ED25519_SPKI_PREFIX: [u8; 12] = [
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    let parsed = webpki::EndEntityCert::try_from(cert).ok()?;
    let spki = parsed.subject_public_key_info();
    let spki = spki.as_ref();
    if spki.len() != 44 || spki[..12] != ED25519_SPKI_PREFIX {
        return None;
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&spki[12..]);
    NodeId::from_key_bytes(key).ok()
}

fn refuse(side: &str, cert: &CertificateDer<'_>, why: &str) -> rustls::Error {
    let who = node_id_of(cert)
        .map(|id| id.to_string())
        .unwrap_or_else(|| "a non-ed25519 key".into());
    tracing::warn!(key = %who, side, cause = why, "refused a handshake");
    let cause = if side == "server" {
        "not_pinned"
    } else {
        "wrong_key"
    };
    crate::metrics::metrics()
        .handshakes_refused
        .get_or_create(&crate::metrics::kind("cause", cause))
        .inc();
    rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
}

/// The key a dialled server presented, kept by the client's verifier so that a refusal can say
/// whose node answered at the address.
pub type Presented = Arc<Mutex<Option<NodeId>>>;

/// Client side: accept the server only if it presents exactly the key we dialled.
#[derive(Debug)]
struct ExpectServer {
    expected: NodeId,
    algorithms: WebPkiSupportedAlgorithms,
    presented: Presented,
}

impl ServerCertVerifier for ExpectServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let id = node_id_of(end_entity);
        if let Ok(mut p) = self.presented.lock() {
            *p = id;
        }
        match id {
            Some(id) if id == self.expected => Ok(ServerCertVerified::assertion()),
            _ => Err(refuse(
                "client",
                end_entity,
                &format!("server is not the pinned node {}", self.expected),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not used".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// Server side: accept a client only if its key is pinned.
#[derive(Debug)]
struct PinnedClients {
    pins: Pins,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for PinnedClients {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let pinned = match (node_id_of(end_entity), self.pins.read()) {
            (Some(id), Ok(pins)) => pins.contains(&id),
            _ => false,
        };
        if pinned {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(refuse("server", end_entity, "client key is not pinned"))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not used".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// How long a connection may stay silent before it is given up: a peer that vanishes in the
/// middle of a round costs this long, not QUIC's default of 30 s. Keep-alives are sent well
/// within it, so a quiet but live connection never lapses.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
const KEEP_ALIVE: Duration = Duration::from_secs(3);

/// What an endpoint is for: a long-running node, or one round from a short-lived command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `serve`: connections live for hours, so probing for a larger path MTU pays.
    Serve,
    /// `sync`: a few round trips, where MTU probes (up to 1,452 bytes each) would cost more
    /// than they save.
    OneShot,
}

fn transport_config(role: Role) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(KEEP_ALIVE));
    if let Ok(idle) = quinn::IdleTimeout::try_from(IDLE_TIMEOUT) {
        t.max_idle_timeout(Some(idle));
    }
    // No path-MTU probing: probes of up to 1,452 bytes each cost more than a one-shot round's
    // whole exchange, and a serving node cannot tell a one-shot client from a staying one.
    // Packets stay at QUIC's initial 1,200 bytes, a few percent more packets on large syncs.
    let _ = role;
    t.mtu_discovery_config(None);
    Arc::new(t)
}

/// The endpoint's stateless-reset key, derived from the node key so it is the same after a
/// restart: a peer that restarts answers packets of its old connections with a reset this node
/// recognises, and the connection ends at once instead of after the idle timeout. It stays
/// secret (whoever knows it could end this node's connections).
fn reset_key(key: &NodeKey) -> Arc<dyn quinn::crypto::HmacKey> {
    let derived = derive(key, b"poa-node quic stateless reset v1\0");
    Arc::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &derived))
}

/// The key of the connection-id generator, derived from the node key for the same reason: the
/// restarted endpoint must recognise the ids it issued before (it drops packets for ids it
/// cannot validate, and would never send the reset).
fn cid_key(key: &NodeKey) -> u64 {
    let d = derive(key, b"poa-node quic connection ids v1\0");
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

fn derive(key: &NodeKey, domain: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(domain);
    h.update(key.seed());
    h.finalize().into()
}

/// The client configuration for dialling `expected`.
///
/// The returned slot holds the key the server presented once the handshake has begun.
pub fn client_config(
    key: &NodeKey,
    expected: NodeId,
    role: Role,
) -> Result<(quinn::ClientConfig, Presented), TransportError> {
    let provider = provider();
    let algorithms = provider.signature_verification_algorithms;
    let (cert, private) = certificate(key)?;
    let presented = Presented::default();
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ExpectServer {
            expected,
            algorithms,
            presented: presented.clone(),
        }))
        .with_client_auth_cert(vec![cert], private)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicClientConfig::try_from(tls).map_err(|e| TransportError::Quic(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(quic));
    cfg.transport_config(transport_config(role));
    Ok((cfg, presented))
}

/// A QUIC endpoint that serves pinned peers on `addr` and can dial out.
pub fn endpoint(
    addr: SocketAddr,
    key: &NodeKey,
    pins: Pins,
    role: Role,
) -> Result<quinn::Endpoint, TransportError> {
    let provider = provider();
    let algorithms = provider.signature_verification_algorithms;
    let (cert, private) = certificate(key)?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(PinnedClients { pins, algorithms }))
        .with_single_cert(vec![cert], private)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicServerConfig::try_from(tls).map_err(|e| TransportError::Quic(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic));
    server.transport_config(transport_config(role));
    let bind = |source| TransportError::Bind { addr, source };
    let socket = std::net::UdpSocket::bind(addr).map_err(bind)?;
    let runtime = quinn::default_runtime()
        .ok_or_else(|| TransportError::Quic("no async runtime is running".into()))?;
    let mut config = quinn::EndpointConfig::new(reset_key(key));
    let cids = cid_key(key);
    config
        .cid_generator(move || Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cids)));
    quinn::Endpoint::new(config, Some(server), socket, runtime).map_err(bind)
}

/// The NodeId the peer of an established connection proved in its handshake.
pub fn peer_id(conn: &quinn::Connection) -> Option<NodeId> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    certs.first().and_then(node_id_of)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_names_the_node_key() {
        let key = NodeKey::from_seed(&[9; 32]);
        let (cert, _) = certificate(&key).unwrap();
        assert_eq!(node_id_of(&cert), Some(key.node_id()));
        assert_eq!(node_id_of(&CertificateDer::from(vec![1, 2, 3])), None);
    }
}
