//! XML streams: the bounded stanza reader (pure), one stream over any transport,
//! dialing the server by name or address, and the async adapter for the XEP-0114
//! component link to the XMPP server.
pub mod dial;
pub mod link;
pub mod reader;
pub mod stream;
