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

-- upload latents: scoped by (guild_id, id); 0 = stored before 0002, not scoped
ALTER TABLE latents ADD COLUMN guild_id bigint NOT NULL DEFAULT 0,
                    ADD COLUMN member_id bigint NOT NULL DEFAULT 0,
                    ADD COLUMN used double precision;    -- last redrawn (pruning), updated at most daily
UPDATE latents SET used = created;
ALTER TABLE latents ALTER COLUMN used SET NOT NULL,
                    ALTER COLUMN guild_id DROP DEFAULT,
                    ALTER COLUMN member_id DROP DEFAULT,
                    DROP CONSTRAINT latents_pkey,
                    ADD PRIMARY KEY (guild_id, id);
CREATE INDEX latents_member ON latents (guild_id, member_id);

CREATE TABLE avatar_latents (
    avatar_id bigint NOT NULL REFERENCES saved_avatars (id) ON DELETE CASCADE,
    latent_id text   NOT NULL,
    PRIMARY KEY (avatar_id, latent_id)
);
CREATE INDEX avatar_latents_latent ON avatar_latents (latent_id);

ALTER TABLE recipe_refs ADD COLUMN used double precision NOT NULL DEFAULT 0;
UPDATE recipe_refs SET used = extract(epoch FROM now());
