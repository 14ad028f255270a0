"""Meta's platforms: Facebook Pages, Threads and Instagram, over one Graph error table.

One concern per module: ``graph`` (error envelope and code table), ``sdk`` (the
facebook-sdk transport), ``facebook``, ``containers`` (the two-step publishing Threads and
Instagram share), ``threads``, ``instagram``, ``connect`` (``autopublish connect facebook``).
"""
