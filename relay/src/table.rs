//! The room table: who is in which room, and the rules for getting in,
//! with no sockets, locks or clocks in it, so it is unit-tested here.
//! [`crate::rooms`] keeps one behind a mutex and says what each message
//! means; a member is reached through a `T` (its outbox there, a plain
//! value in the tests) and a room holds its creator's `C` (the per-address
//! room slot there) for as long as it lasts.

use std::collections::{BTreeMap, HashMap};

use peercall_protocol::codes;

/// Why a message was refused: an error code and words for people.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refusal(pub(crate) &'static str, pub(crate) String);

/// Every room with at least one member.
#[derive(Debug)]
pub(crate) struct RoomTable<T, C> {
    rooms: HashMap<String, Room<T, C>>,
    max_rooms: usize,
    max_members: usize,
}

#[derive(Debug)]
struct Room<T, C> {
    /// By peer id; ordered so `welcome` lists are stable.
    members: BTreeMap<String, Member<T>>,
    _creator: C,
}

/// One peer in a room.
#[derive(Debug)]
pub(crate) struct Member<T> {
    /// The connection it joined on.
    pub(crate) conn: u64,
    /// Its display name, if it gave one.
    pub(crate) name: Option<String>,
    /// How to reach it.
    pub(crate) to: T,
}

impl<T: Clone, C> RoomTable<T, C> {
    /// No rooms yet; at most `max_rooms` at once, of `max_members` each.
    pub(crate) fn new(max_rooms: usize, max_members: usize) -> Self {
        Self {
            rooms: HashMap::new(),
            max_rooms,
            max_members,
        }
    }

    /// (rooms, members) now.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (
            self.rooms.len(),
            self.rooms.values().map(|r| r.members.len()).sum(),
        )
    }

    /// Member `id` of `room`, if it is there.
    pub(crate) fn member(&self, room: &str, id: &str) -> Option<&Member<T>> {
        self.rooms.get(room)?.members.get(id)
    }

    /// Whether `room` has members here.
    pub(crate) fn has_room(&self, room: &str) -> bool {
        self.rooms.contains_key(room)
    }

    /// Every member: (room, id, member).
    pub(crate) fn each(&self) -> impl Iterator<Item = (&str, &str, &Member<T>)> {
        self.rooms.keys().flat_map(|room| {
            self.members(room)
                .map(move |(id, m)| (room.as_str(), id, m))
        })
    }

    /// The members of `room`, by id (none if it has none).
    pub(crate) fn members(&self, room: &str) -> impl Iterator<Item = (&str, &Member<T>)> {
        self.rooms
            .get(room)
            .into_iter()
            .flat_map(|r| r.members.iter().map(|(id, m)| (id.as_str(), m)))
    }

    /// Puts `member` into `room` as `id`, making the room if it is new
    /// (with `creator()`'s token, which may refuse). The same connection
    /// joining again updates its name. Gives everyone else there, in id
    /// order, for the `welcome` and to tell of the newcomer.
    pub(crate) fn join(
        &mut self,
        room: &str,
        id: &str,
        member: Member<T>,
        creator: impl FnOnce() -> Result<C, Refusal>,
    ) -> Result<Vec<(String, Member<T>)>, Refusal> {
        match self.rooms.get(room) {
            None if self.rooms.len() >= self.max_rooms => {
                return Err(Refusal(
                    codes::TOO_MANY_ROOMS,
                    format!(
                        "the relay has its limit of {} rooms; try again later",
                        self.max_rooms
                    ),
                ))
            }
            None => {
                let creator = creator()?;
                self.rooms.insert(
                    room.to_owned(),
                    Room {
                        members: BTreeMap::new(),
                        _creator: creator,
                    },
                );
            }
            Some(existing) => match existing.members.get(id) {
                Some(m) if m.conn != member.conn => {
                    return Err(Refusal(
                        codes::ID_TAKEN,
                        format!(
                            "another connection in this room is peer {id:?}; pick a new random id"
                        ),
                    ))
                }
                Some(_) => {}
                None if existing.members.len() >= self.max_members => {
                    return Err(Refusal(
                        codes::ROOM_FULL,
                        format!("the room is full ({} people)", self.max_members),
                    ))
                }
                None => {}
            },
        }
        let Some(r) = self.rooms.get_mut(room) else {
            return Ok(Vec::new());
        };
        r.members.insert(id.to_owned(), member);
        Ok(r.members
            .iter()
            .filter(|(other, _)| *other != id)
            .map(|(other, m)| {
                (
                    other.clone(),
                    Member {
                        conn: m.conn,
                        name: m.name.clone(),
                        to: m.to.clone(),
                    },
                )
            })
            .collect())
    }

    /// Who a message from `from` in `room` goes to: `to` alone, or
    /// everyone else there.
    pub(crate) fn recipients(
        &self,
        room: &str,
        from: &str,
        to: Option<&str>,
    ) -> Result<Vec<T>, Refusal> {
        let members = self.rooms.get(room).map(|r| &r.members);
        match to {
            Some(to) => match members.and_then(|m| m.get(to)).filter(|_| to != from) {
                Some(member) => Ok(vec![member.to.clone()]),
                None => Err(Refusal(
                    codes::UNKNOWN_PEER,
                    format!("peer {to:?} is not in this room (any more); message dropped"),
                )),
            },
            None => Ok(members
                .into_iter()
                .flatten()
                .filter(|(id, _)| *id != from)
                .map(|(_, m)| m.to.clone())
                .collect()),
        }
    }

    /// Takes `id` out of `room` if connection `conn` is it (a newer
    /// connection with the same id stays), dropping the room when it
    /// empties; gives who is still there.
    pub(crate) fn remove(&mut self, room: &str, id: &str, conn: u64) -> Vec<T> {
        let Some(r) = self.rooms.get_mut(room) else {
            return Vec::new();
        };
        if r.members.get(id).is_some_and(|m| m.conn == conn) {
            r.members.remove(id);
        }
        if r.members.is_empty() {
            self.rooms.remove(room);
            // After a flood of rooms the table would keep its size for good.
            if self.rooms.capacity() > 1024 && self.rooms.capacity() > 8 * self.rooms.len() {
                let keep = self.rooms.len() * 2;
                self.rooms.shrink_to(keep);
            }
            return Vec::new();
        }
        r.members.values().map(|m| m.to.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    /// A creator token that counts how many rooms are alive.
    struct Token(Rc<Cell<usize>>);

    impl Drop for Token {
        fn drop(&mut self) {
            self.0.set(self.0.get() - 1);
        }
    }

    type Table = RoomTable<&'static str, Token>;

    fn member(conn: u64, to: &'static str) -> Member<&'static str> {
        Member {
            conn,
            name: Some(to.to_uppercase()),
            to,
        }
    }

    fn open(alive: &Rc<Cell<usize>>) -> impl FnOnce() -> Result<Token, Refusal> + '_ {
        move || {
            alive.set(alive.get() + 1);
            Ok(Token(alive.clone()))
        }
    }

    fn ids<'a>(others: &'a [(String, Member<&str>)]) -> Vec<&'a str> {
        others.iter().map(|(id, _)| id.as_str()).collect()
    }

    #[test]
    fn joining_lists_the_others_in_order_and_a_rejoin_keeps_one_entry() {
        let alive = Rc::new(Cell::new(0));
        let mut t = Table::new(10, 6);
        assert!(t
            .join("r", "c", member(1, "c"), open(&alive))
            .unwrap()
            .is_empty());
        assert_eq!(
            ids(&t.join("r", "a", member(2, "a"), open(&alive)).unwrap()),
            ["c"]
        );
        let others = t.join("r", "b", member(3, "b"), open(&alive)).unwrap();
        assert_eq!(ids(&others), ["a", "c"]);
        assert_eq!(others[0].1.name.as_deref(), Some("A"));
        // The same connection joining again (after a `leave`, or twice).
        assert_eq!(
            ids(&t.join("r", "b", member(3, "b"), open(&alive)).unwrap()),
            ["a", "c"]
        );
        assert_eq!(t.counts(), (1, 3));
        assert_eq!(alive.get(), 1, "one room, one creator token");
        assert_eq!(t.member("r", "a").map(|m| m.conn), Some(2));
        assert!(t.member("r", "z").is_none() && t.member("q", "a").is_none());
    }

    #[test]
    fn a_full_room_a_taken_id_and_the_room_limit_are_refused() {
        let alive = Rc::new(Cell::new(0));
        let mut t = Table::new(2, 2);
        t.join("r", "a", member(1, "a"), open(&alive)).unwrap();
        let taken = t.join("r", "a", member(9, "x"), open(&alive)).unwrap_err();
        assert_eq!(taken.0, codes::ID_TAKEN);
        t.join("r", "b", member(2, "b"), open(&alive)).unwrap();
        let full = t.join("r", "c", member(3, "c"), open(&alive)).unwrap_err();
        assert_eq!(
            full,
            Refusal(codes::ROOM_FULL, "the room is full (2 people)".into())
        );
        t.join("q", "a", member(4, "a"), open(&alive)).unwrap();
        let many = t.join("s", "a", member(5, "a"), open(&alive)).unwrap_err();
        assert_eq!(many.0, codes::TOO_MANY_ROOMS);
        // A creator that refuses makes no room.
        let refused = t.join("q2", "a", member(6, "a"), || {
            Err(Refusal(codes::TOO_MANY_ROOMS, "yours".into()))
        });
        assert!(refused.is_err());
        assert_eq!(t.counts(), (2, 3));
        assert_eq!(alive.get(), 2);
    }

    #[test]
    fn messages_go_to_one_peer_or_everyone_else() {
        let alive = Rc::new(Cell::new(0));
        let mut t = Table::new(10, 6);
        for (conn, id) in [(1, "a"), (2, "b"), (3, "c")] {
            t.join("r", id, member(conn, id), open(&alive)).unwrap();
        }
        assert_eq!(t.recipients("r", "a", None).unwrap(), ["b", "c"]);
        assert_eq!(t.recipients("r", "a", Some("c")).unwrap(), ["c"]);
        for to in ["a", "z"] {
            let e = t.recipients("r", "a", Some(to)).unwrap_err();
            assert_eq!(e.0, codes::UNKNOWN_PEER, "{to}");
        }
        assert!(t.recipients("elsewhere", "a", None).unwrap().is_empty());
    }

    #[test]
    fn leaving_tells_who_stays_and_an_empty_room_goes_with_its_token() {
        let alive = Rc::new(Cell::new(0));
        let mut t = Table::new(10, 6);
        t.join("r", "a", member(1, "a"), open(&alive)).unwrap();
        t.join("r", "b", member(2, "b"), open(&alive)).unwrap();
        // An old connection of "b" going away does not remove the new one.
        assert_eq!(t.remove("r", "b", 99), ["a", "b"]);
        assert_eq!(t.remove("r", "b", 2), ["a"]);
        assert_eq!(t.remove("r", "a", 1), Vec::<&str>::new());
        assert_eq!((t.counts(), alive.get()), ((0, 0), 0));
        assert!(
            t.remove("r", "a", 1).is_empty(),
            "gone already: nothing to do"
        );
    }

    #[test]
    fn a_flood_of_rooms_gives_its_memory_back() {
        let alive = Rc::new(Cell::new(0));
        let mut t = Table::new(100_000, 6);
        let names: Vec<String> = (0..5_000).map(|i| format!("r{i}")).collect();
        for (i, room) in names.iter().enumerate() {
            t.join(room, "a", member(i as u64, "a"), open(&alive))
                .unwrap();
        }
        let before = t.rooms.capacity();
        for (i, room) in names.iter().enumerate() {
            t.remove(room, "a", i as u64);
        }
        assert!(
            t.rooms.capacity() < before / 8,
            "{} of {before}",
            t.rooms.capacity()
        );
        assert_eq!(alive.get(), 0);
    }
}
