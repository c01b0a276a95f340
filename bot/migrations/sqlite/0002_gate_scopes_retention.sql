-- 0002: one generation gate (a token bucket per member) instead of a fixed cooldown; upload
-- latents scoped to the server and member that uploaded them; bookkeeping for pruning.
ALTER TABLE guild_settings DROP COLUMN cooldown_s;
ALTER TABLE guild_settings ADD COLUMN burst INTEGER;     -- NULL: settings.burst
ALTER TABLE guild_settings ADD COLUMN refill_s REAL;     -- NULL: settings.refill_s; 0 = no steady limit

ALTER TABLE usage DROP COLUMN last_at;                   -- the bucket says when the last draw was

CREATE TABLE buckets (
    guild_id  INTEGER NOT NULL,
    member_id INTEGER NOT NULL,
    tokens    REAL    NOT NULL,            -- draws left at `updated` (refilled on read)
    updated   REAL    NOT NULL,            -- unix seconds
    PRIMARY KEY (guild_id, member_id)
);

CREATE TABLE latents_scoped (
    guild_id  INTEGER NOT NULL,            -- 0: stored before 0002, not scoped
    member_id INTEGER NOT NULL,            -- 0: stored before 0002
    id        TEXT    NOT NULL,            -- the recipe's upload id
    z         BLOB    NOT NULL,            -- float32, little endian
    created   REAL    NOT NULL,
    used      REAL    NOT NULL,            -- last redrawn (pruning), updated at most daily
    PRIMARY KEY (guild_id, id)
);
INSERT INTO latents_scoped (guild_id, member_id, id, z, created, used) SELECT 0, 0, id, z, created, created FROM latents;
DROP TABLE latents;
ALTER TABLE latents_scoped RENAME TO latents;
CREATE INDEX latents_member ON latents (guild_id, member_id);

-- Upload latents a saved avatar needs: never pruned while the avatar exists.
CREATE TABLE avatar_latents (
    avatar_id INTEGER NOT NULL REFERENCES saved_avatars (id) ON DELETE CASCADE,
    latent_id TEXT    NOT NULL,
    PRIMARY KEY (avatar_id, latent_id)
);
CREATE INDEX avatar_latents_latent ON avatar_latents (latent_id);

ALTER TABLE recipe_refs ADD COLUMN used REAL NOT NULL DEFAULT 0;  -- last looked up, updated at most daily
UPDATE recipe_refs SET used = strftime('%s', 'now');
