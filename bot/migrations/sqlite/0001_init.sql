-- 0001: saved avatars, per-server settings, usage counters, remix latents.
CREATE TABLE saved_avatars (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id  INTEGER NOT NULL,
    member_id INTEGER NOT NULL,
    code      TEXT    NOT NULL,            -- engine Recipe.to_code()
    png       BLOB    NOT NULL,            -- the image as the member saw it
    created   REAL    NOT NULL             -- unix seconds
);
CREATE INDEX saved_avatars_member ON saved_avatars (guild_id, member_id, id);

CREATE TABLE guild_settings (
    guild_id     INTEGER PRIMARY KEY,
    default_pack TEXT,                     -- NULL: settings.default_pack
    cooldown_s   REAL,                     -- NULL: settings.cooldown_s
    daily_quota  INTEGER                   -- NULL: settings.daily_quota; 0 = unlimited
);

CREATE TABLE allowed_channels (
    guild_id   INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    PRIMARY KEY (guild_id, channel_id)
);

CREATE TABLE usage (
    guild_id  INTEGER NOT NULL,
    member_id INTEGER NOT NULL,
    day       TEXT    NOT NULL,            -- UTC date, YYYY-MM-DD
    count     INTEGER NOT NULL,
    last_at   REAL    NOT NULL,            -- unix seconds of the last generation
    PRIMARY KEY (guild_id, member_id, day)
);

CREATE TABLE latents (
    id      TEXT PRIMARY KEY,              -- the recipe's upload id
    z       BLOB NOT NULL,                 -- float32, little endian
    created REAL NOT NULL
);

-- Recipe codes too long for a custom_id (deep blends): buttons carry "~<id>" instead.
CREATE TABLE recipe_refs (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    code TEXT NOT NULL UNIQUE
);
