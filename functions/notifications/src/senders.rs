//! The senders of this deployment, one per channel.

use std::collections::HashMap;
use std::sync::Arc;

use motcua_domain::notify::Channel;
use motcua_ports::notifications::Sender;

#[derive(Clone, Default)]
pub struct Senders {
    by_channel: HashMap<Channel, Arc<dyn Sender>>,
}

impl Senders {
    pub fn with(mut self, sender: Arc<dyn Sender>) -> Senders {
        self.by_channel.insert(sender.channel(), sender);
        self
    }

    pub fn get(&self, channel: Channel) -> Option<&Arc<dyn Sender>> {
        self.by_channel.get(&channel)
    }

    /// Channels with a sender, in [`Channel::ALL`] order.
    pub fn channels(&self) -> Vec<Channel> {
        Channel::ALL
            .into_iter()
            .filter(|c| self.by_channel.contains_key(c))
            .collect()
    }
}
