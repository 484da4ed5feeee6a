# Cohort node image: one image for every role (console, replica, engine); the node's
# configuration file says which. docs/deployment.md explains how to run it, and
# test/unit/deployment-files.test.ts checks this file against the code.
#
#   docker build -t cohort:1.0.0 .
#   docker run -v $PWD/engine.ini:/etc/cohort/cohort.ini:ro -v cohort-data:/var/lib/cohort cohort:1.0.0

ARG NODE_IMAGE=node:20-bookworm

# ---- build: every dependency (TypeScript, Vite), then dist/, then only what runs is kept
FROM ${NODE_IMAGE} AS build
WORKDIR /build
# Dependencies first, in a layer of their own, so a change to the sources does not reinstall
# them. Install scripts stay off (the project's prepare script would build before the sources
# are here); better-sqlite3, the one package whose script is needed (its native binding), is
# rebuilt on its own.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts && npm rebuild better-sqlite3
COPY . .
RUN node scripts/build.mjs && npm prune --omit=dev --ignore-scripts

# ---- runtime: Node.js, the production dependencies and dist/, nothing else
FROM ${NODE_IMAGE}-slim AS runtime
# A user of its own with a fixed id: Kubernetes' runAsNonRoot can check a numeric USER, and
# files on volumes keep one owner across image versions.
RUN groupadd --system --gid 10001 cohort \
 && useradd --system --uid 10001 --gid cohort --home-dir /var/lib/cohort --shell /usr/sbin/nologin cohort \
 && mkdir -p /etc/cohort /var/lib/cohort \
 && chown cohort:cohort /var/lib/cohort
WORKDIR /opt/cohort
COPY --from=build /build/package.json ./package.json
COPY --from=build /build/node_modules ./node_modules
COPY --from=build /build/dist/src ./dist/src
COPY --from=build /build/dist/web ./dist/web
RUN ln -s /opt/cohort/dist/src/cli/cohort.js /usr/local/bin/cohort
ENV NODE_ENV=production \
    COHORT_CONFIG_FILE=/etc/cohort/cohort.ini
USER 10001:10001
VOLUME ["/var/lib/cohort"]
# cluster port, runtime API, admin API and web console, management API (the defaults of
# docs/deployment.md's files; the node listens where its configuration says)
EXPOSE 8020 9000 9080 9100
# SIGTERM is the graceful stop: an engine drains ([http] drain_seconds), saves its state and
# leaves. Give it time: docker stop --time 60 (the default 10 s cuts a large save short).
STOPSIGNAL SIGTERM
# On the manage listener, which every role has; `cohort health` reads COHORT_CONFIG_FILE
# for its address (and TLS settings), so it follows the configuration.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 CMD ["cohort", "health", "--timeout", "5"]
ENTRYPOINT ["cohort", "start"]
