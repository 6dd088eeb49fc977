# mod_claude on Debian 12's Apache httpd. Installs through the same script as
# CI and the README commands, builds and installs the modules the Debian way,
# and runs httpd in the foreground with the example vhost from conf/.
#   docker build -t mod-claude .
#   docker run -e ANTHROPIC_API_KEY=... -p 8443:443 mod-claude
FROM debian:12
WORKDIR /src
COPY tools/install-deps.sh tools/install-deps.sh
RUN bash tools/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY Makefile apxs.mk ./
COPY tools/sql2c.sh tools/sql2c.sh
COPY mod_claude_gateway/ mod_claude_gateway/
COPY mod_claude_spend/ mod_claude_spend/
COPY conf/ conf/
COPY sql/ sql/
RUN make && make install \
    && install -m 644 conf/claude-gateway-log.conf /etc/apache2/conf-available/ \
    && install -m 644 conf/claude-gateway-vhost.conf.example \
        /etc/apache2/sites-available/claude-gateway.conf \
    && a2enmod proxy proxy_http ssl claude_gateway claude_spend \
    && a2ensite claude-gateway \
    && echo 'export ANTHROPIC_API_KEY' >> /etc/apache2/envvars
EXPOSE 443
CMD ["apache2ctl", "-D", "FOREGROUND"]
