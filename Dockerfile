# syntax=docker/dockerfile:1
# weft's image: weftd (and weftctl) on Debian 12 slim with Node 20, iproute2, iptables and nftables (nft, for
# "EnableNFTables": true).
#   docker build -t weft:0.1.0 .
# contrib/kubernetes/weft.yaml runs it as a DaemonSet.
#
# The base image is pinned by tag. Pinning its digest too (node:20.20.2-bookworm-slim@sha256:…) makes the
# build reproducible, but a digest cannot be resolved offline, where this file was written; look it up with
#   docker buildx imagetools inspect node:20.20.2-bookworm-slim
# and append it here.
ARG NODE_IMAGE=node:20.20.2-bookworm-slim

# A C/C++ toolchain for node-gyp: raw-socket (a dependency) and weft's udp addon (native/) compile at
# install time. Node's headers ship with the image, so node-gyp downloads nothing.
FROM ${NODE_IMAGE} AS toolchain
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
ENV npm_config_nodedir=/usr/local \
    npm_config_update_notifier=false

# TypeScript → dist/, and native/build/Release/*.node, built as the unprivileged `node` user.
FROM toolchain AS build
USER node
WORKDIR /home/node/weft
COPY --chown=node:node package.json package-lock.json ./
COPY --chown=node:node native ./native
RUN npm ci --no-audit --no-fund
COPY --chown=node:node tsconfig.json tsconfig.build.json ./
COPY --chown=node:node src ./src
COPY --chown=node:node daemon ./daemon
RUN npm run build \
 && if [ ! -f native/build/Release/weft_udp.node ]; then \
      node "$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js" rebuild --directory=native; \
    fi \
 && chmod 0755 dist/daemon/weftd.js dist/daemon/weftctl.js

# The runtime's node_modules: `npm ci --omit=dev` on the same base as the runtime (same Node ABI and glibc),
# here because raw-socket needs the toolchain to install, and the toolchain stays out of the runtime.
FROM toolchain AS prod-deps
USER node
WORKDIR /home/node/weft
COPY --chown=node:node package.json package-lock.json ./
COPY --chown=node:node native ./native
RUN npm ci --omit=dev --no-audit --no-fund

# The CNI reference plugins the conflist weftd writes uses; the DaemonSet's init container copies them to
# nodes that have none. Only the four binaries reach the runtime.
FROM ${NODE_IMAGE} AS cni-plugins
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends containernetworking-plugins \
 && rm -rf /var/lib/apt/lists/*

FROM ${NODE_IMAGE} AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iproute2 iptables nftables \
 && rm -rf /var/lib/apt/lists/*
# weftd's memory settings (docs/memory.md), all in its shebang; the part NODE_OPTIONS allows is here for
# `node dist/daemon/weftd.js` too.
ENV NODE_ENV=production \
    NODE_OPTIONS=--max-semi-space-size=1
WORKDIR /opt/weft
COPY package.json package-lock.json ./
COPY --from=prod-deps /home/node/weft/node_modules ./node_modules
COPY --from=build /home/node/weft/dist ./dist
COPY --from=build /home/node/weft/native/build/Release/weft_udp.node ./native/build/Release/weft_udp.node
COPY --from=cni-plugins /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/portmap /usr/lib/cni/loopback /opt/weft/cni-bin/
COPY contrib/kubernetes/install-cni-plugins /usr/local/lib/weft/install-cni-plugins
RUN ln -s /opt/weft/dist/daemon/weftd.js /usr/local/bin/weftd \
 && ln -s /opt/weft/dist/daemon/weftctl.js /usr/local/bin/weftctl \
 && weftd --version
# weftd programs links, routes and iptables or nftables: it runs as root in the container and gets only the
# capabilities the DaemonSet grants (NET_ADMIN, NET_RAW); the build stages above run as `node`.
USER root
ENTRYPOINT ["weftd"]
