-- 0002: as sqlite/0002: token buckets, upload latents scoped to server and member, pruning.
ALTER TABLE guild_settings DROP COLUMN cooldown_s;
ALTER TABLE guild_settings ADD COLUMN burst integer;
ALTER TABLE guild_settings ADD COLUMN refill_s double precision;

ALTER TABLE usage DROP COLUMN last_at;

CREATE TABLE buckets (
    guild_id  bigint           NOT NULL,
    member_id bigint           NOT NULL,
    tokens    double precision NOT NULL,
    updated   double precision NOT NULL,
    PRIMARY KEY (guild_id, member_id)
);

CREATE TABLE latents_scoped (
    guild_id  bigint           NOT NULL,   -- 0: stored before 0002, not scoped
    member_id bigint           NOT NULL,
    id        text             NOT NULL,
    z         bytea            NOT NULL,
    created   double precision NOT NULL,
    used      double precision NOT NULL,
    PRIMARY KEY (guild_id, id)
);
INSERT INTO latents_scoped (guild_id, member_id, id, z, created, used) SELECT 0, 0, id, z, created, created FROM latents;
DROP TABLE latents;
ALTER TABLE latents_scoped RENAME TO latents;
CREATE INDEX latents_member ON latents (guild_id, member_id);

CREATE TABLE avatar_latents (
    avatar_id bigint NOT NULL REFERENCES saved_avatars (id) ON DELETE CASCADE,
    latent_id text   NOT NULL,
    PRIMARY KEY (avatar_id, latent_id)
);
CREATE INDEX avatar_latents_latent ON avatar_latents (latent_id);

ALTER TABLE recipe_refs ADD COLUMN used double precision NOT NULL DEFAULT 0;
UPDATE recipe_refs SET used = extract(epoch FROM now());
