//! `vproto serve driver|agent|conductor --bus amqp://...`: the three find and call each other
//! by name through a RabbitMQ broker (docs/bus.md), with no endpoint dialled.
//!
//! Each serves on the bus as the instance named by its endpoint (`--endpoint`, else the driver
//! config's, else `HOSTNAME:BROKER_PORT`): queues `SERVICE` and `SERVICE.ENDPOINT`, and the
//! fanout. A driver says hello to the agent of its machine (`agent.HOSTNAME:BROKER_PORT`), an
//! agent to any conductor (the shared `conductor` queue), unless `--agent`/`--conductor` say
//! otherwise; the agent reaches its drivers, and the conductor its agents, at
//! `SERVICE.ENDPOINT` of the endpoint each registered with. `--listen` is optional: given, the
//! service is also served there.

use vproto_api::Endpoint;
use vproto_jsonrpc::{
    transport::{AmqpAddr, AmqpBroker, AmqpRoute},
    ConnectAddr, ListenAddr, RunningServer, Server,
};
use vproto_services::{
    peer::{bus_addr, bus_endpoint},
    PeerScheme,
};

use super::ServeArgs;
use crate::CliError;

/// The broker of `--bus`.
pub(super) struct Bus {
    broker: AmqpBroker,
}

impl Bus {
    /// `--bus`, if given; refuses `--peer-scheme` beside it (peers are reached through the bus).
    /// An `amqps://` broker is reached over the TLS of `--tls-ca` (with `--tls-cert` as the
    /// client certificate), which it requires.
    pub(super) fn from_args(args: &ServeArgs) -> Result<Option<Bus>, CliError> {
        let Some(text) = args.bus.as_deref() else { return Ok(None) };
        if args.peer_scheme.is_some() {
            return Err(CliError::usage(
                "--peer-scheme does not apply with --bus: peers are reached through the broker",
            ));
        }
        let broker = text.parse::<AmqpBroker>().map_err(|e| CliError::usage(format!("--bus: {e}")))?;
        let broker = match (broker.secure, args.security.client_tls()?) {
            (true, None) => {
                return Err(CliError::usage(format!(
                    "--bus {broker} is over TLS: give --tls-ca FILE (the CA that signed the broker's certificate)"
                )))
            }
            (true, tls) => broker.with_tls(tls),
            (false, _) => broker,
        };
        Ok(Some(Bus { broker }))
    }

    /// How `service` reaches the peers registered with it: the agent its drivers, the
    /// conductor its agents, each at `SERVICE.ENDPOINT`.
    pub(super) fn peer_scheme(&self, service: &str) -> PeerScheme {
        let peers = match service {
            "agent" => "driver",
            "conductor" => "agent",
            // A driver calls no peer.
            _ => return PeerScheme::default(),
        };
        PeerScheme::Bus { broker: self.broker.clone(), service: peers.to_string() }
    }

    /// Where `service` says hello when no `--agent`/`--conductor` is given: a driver to the
    /// agent of this machine, an agent to any conductor.
    pub(super) fn register_with(&self, service: &str) -> Option<ConnectAddr> {
        let addr = match service {
            "driver" => bus_addr(&self.broker, "agent", &self.endpoint()),
            "agent" => AmqpAddr::new(self.broker.clone(), "conductor", AmqpRoute::Shared),
            _ => return None,
        };
        Some(ConnectAddr::Listen(ListenAddr::Amqp(addr)))
    }

    /// The endpoint of a component given none: `HOSTNAME:BROKER_PORT`.
    pub(super) fn endpoint(&self) -> Endpoint {
        bus_endpoint(&self.broker)
    }

    /// Serves `service` on the bus as the instance `instance`.
    pub(super) async fn serve(
        &self,
        server: Server,
        service: &str,
        instance: &Endpoint,
    ) -> Result<RunningServer, CliError> {
        let addr = ListenAddr::Amqp(bus_addr(&self.broker, service, instance));
        server.bind(&addr).await.map_err(|e| CliError::failed(e.to_string()))
    }
}
