//! C2SP tlog-tiles (height 8): tile coordinates, resource paths and entry bundles.
//!
// API (to implement):
// pub const TILE_HEIGHT: u8 = 8; pub const TILE_WIDTH: u64 = 256;
// pub enum TileKind { Hash { level: u8 }, Entries }
// pub struct TilePath { pub kind: TileKind, pub index: u64, pub width: Option<u16 /*1..=255, partial*/> }
//   parse(path: &str) -> Result<TilePath, TilePathError>   // "tile/0/x001/234.p/17", "tile/entries/000" (no leading slash)
//   to_path(&self) -> String
//   tree level of a hash tile = 8*level; hashes [index*256, index*256 + width)
// pub fn encode_n(n: u64) -> String  // "x001/x234/067"
// pub fn partial_width(level: u8, size: u64) -> u64   // floor(size/256^level) mod 256
// pub fn bundle_encode(entries: &[&[u8]], out: &mut Vec<u8>) -> Result<(), TileError>  // u16 BE length prefixes; entry > 65535 bytes is an error
// pub fn bundle_decode(data: &[u8]) -> Result<Vec<&[u8]>, TileError>
// pub const MAX_ENTRY_LEN: usize = 65535;
