<?xml version="1.0" encoding="UTF-8"?>
<!-- Shows an Atom or RSS feed as a readable page in a browser; feed readers never see it. -->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
                xmlns:atom="http://www.w3.org/2005/Atom" exclude-result-prefixes="atom">
  <xsl:output method="html" encoding="UTF-8" indent="yes" doctype-system="about:legacy-compat"/>
  <xsl:template match="/">
    <xsl:variable name="title" select="atom:feed/atom:title | rss/channel/title"/>
    <html>
      <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title><xsl:value-of select="$title"/> (web feed)</title>
        <style>
          :root { color-scheme: light dark; --muted: #666; --line: #ddd; --accent: #c2410c; }
          @media (prefers-color-scheme: dark) { :root { --muted: #aaa; --line: #444; --accent: #fb923c; } }
          body { font: 16px/1.6 system-ui, -apple-system, "Segoe UI", "PingFang SC", "Noto Sans CJK SC", sans-serif;
                 margin: 0 auto; max-width: 46rem; padding: 1rem; }
          .note { border-left: 3px solid var(--accent); padding: .5rem .75rem; color: var(--muted); }
          .note code { overflow-wrap: anywhere; }
          article { border-bottom: 1px solid var(--line); padding: .75rem 0; }
          h2 { font-size: 1.1rem; margin: 0; } .meta { color: var(--muted); font-size: .9rem; }
        </style>
      </head>
      <body>
        <p class="note"><strong>This is a web feed.</strong> To subscribe, copy this page's address into
          your feed reader (Feedly, NetNewsWire, Miniflux, Thunderbird, newsboat...). New entries then
          come to you; nothing to install here.</p>
        <xsl:variable name="self" select="atom:feed/atom:link[@rel='self']/@href | rss/channel/atom:link[@rel='self']/@href"/>
        <xsl:variable name="home" select="atom:feed/atom:link[@rel='alternate']/@href | rss/channel/link"/>
        <xsl:if test="$home"><p class="meta"><a href="{$home}">Home</a></p></xsl:if>
        <h1><xsl:value-of select="$title"/></h1>
        <xsl:if test="$self"><p class="meta">Subscribe: <a href="{$self}"><code><xsl:value-of select="$self"/></code></a></p></xsl:if>
        <p class="meta"><xsl:value-of select="atom:feed/atom:subtitle | rss/channel/description"/></p>
        <xsl:for-each select="atom:feed/atom:entry | rss/channel/item">
          <article>
            <h2><a>
              <xsl:attribute name="href"><xsl:value-of select="atom:link[not(@rel) or @rel='alternate']/@href | link"/></xsl:attribute>
              <xsl:value-of select="atom:title | title"/>
            </a></h2>
            <div class="meta"><xsl:value-of select="atom:published | pubDate"/></div>
            <p><xsl:value-of select="atom:summary | description"/></p>
          </article>
        </xsl:for-each>
      </body>
    </html>
  </xsl:template>
</xsl:stylesheet>
